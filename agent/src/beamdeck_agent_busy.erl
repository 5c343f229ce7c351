%%% @doc The schedulers' busy time over a stretch of code, in the terms the
%%% agent's cost is judged in (`npm run bench -- footprint'): the sum over
%%% schedulers of each one's busy share of the stretch, times its wall time.
%%%
%%% Reads `erlang:statistics(scheduler_wall_time)', which answers only while
%%% some process has the flag on; beamdeck_agent_system keeps it on for the
%%% agent's life (the flag is reference-counted per process, so this never
%%% switches off a host's). Without it, busy time is unknown (0).
-module(beamdeck_agent_busy).

-export([sample/0, busy_us/2]).

-export_type([sample/0]).

-type sample() :: [{pos_integer(), non_neg_integer(), non_neg_integer()}] | undefined.

%% @doc The schedulers' counters now (`undefined' when the flag is off).
-spec sample() -> sample().
sample() ->
    case erlang:statistics(scheduler_wall_time) of
        L when is_list(L) -> lists:sort(L);
        undefined -> undefined
    end.

%% @doc Busy microseconds of all schedulers since `Before', over a stretch
%% that took `WallUs' of wall time; 0 when unknown.
-spec busy_us(Before, WallUs) -> non_neg_integer()
    when Before :: sample(), WallUs :: non_neg_integer().
busy_us(undefined, _WallUs) -> 0;
busy_us(Before, WallUs) ->
    case sample() of
        undefined -> 0;
        After ->
            Share = lists:sum([(A1 - A0) / (T1 - T0)
                               || {{I, A0, T0}, {I, A1, T1}} <- lists:zip(Before, After),
                                  T1 > T0]),
            round(Share * WallUs)
    end.
