-module(bd_loops_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

start_link() -> supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% A purge kills two workers at once: room for their restarts.
init([]) ->
    Child = fun(Kind) ->
                    #{id => Kind, start => {bd_loops_worker, start_link, [Kind]},
                      modules => [bd_loops_worker]}
            end,
    {ok, {#{strategy => one_for_one, intensity => 10, period => 1},
          [Child(K) || K <- [ext, local, pinned]]}}.
