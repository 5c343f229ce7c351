%%% @doc Top supervisor of bd_checks 1.0.0: the state server and the store.
-module(bd_checks_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the supervisor, registered as `bd_checks_sup'.
-spec start_link() -> {ok, pid()}.
start_link() -> supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10},
          [worker(bd_checks_state), worker(bd_checks_store)]}}.

worker(M) ->
    #{id => M, start => {M, start_link, []}, modules => [M]}.
