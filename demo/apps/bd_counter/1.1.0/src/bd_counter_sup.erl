%%% @doc Top supervisor of the bd_counter demo: one counter server.
-module(bd_counter_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the supervisor, registered as `bd_counter_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc One permanent worker. `modules' names the callback module, which is
%% how release_handler finds the process to suspend for `{update, ...}'.
-spec init(Args) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}} when
      Args :: [].
init([]) ->
    Child = #{id => bd_counter_server,
              start => {bd_counter_server, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker,
              modules => [bd_counter_server]},
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10}, [Child]}}.
