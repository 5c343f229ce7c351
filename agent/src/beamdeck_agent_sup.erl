%%% @doc The agent's top supervisor (one_for_one).
%%%
%%% Children, in order: events, sysmon, conn, sampler, upgrade, fallback, system. Each is started only
%%% when its module is present, so a partial build still runs what it has.
%%% The restart intensity is generous: the agent lives inside someone else's
%%% node, and if this supervisor gave up, a permanent application would take
%%% the host node down with it.
-module(beamdeck_agent_sup).

-behaviour(supervisor).

-export([start_link/0, init/1]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([child_modules/0]).
-endif.

-define(CHILDREN, [beamdeck_agent_events, beamdeck_agent_sysmon, beamdeck_agent_conn,
                   beamdeck_agent_sampler,
                   beamdeck_agent_upgrade, beamdeck_agent_fallback, beamdeck_agent_system]).

%% @doc Start the supervisor, registered as `beamdeck_agent_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Child specs for the modules present in this build.
-spec init(Args) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}} when Args :: [].
init([]) ->
    Flags = #{strategy => one_for_one, intensity => 10, period => 60},
    Children = [#{id => M, start => {M, start_link, []}, restart => permanent,
                  shutdown => 5000, type => worker, modules => [M]}
                || M <- child_modules()],
    {ok, {Flags, Children}}.

%% @doc The child modules that are loadable and export start_link/0, in start order.
-spec child_modules() -> [module()].
child_modules() ->
    [M || M <- ?CHILDREN,
          code:ensure_loaded(M) =:= {module, M},
          erlang:function_exported(M, start_link, 0)].
