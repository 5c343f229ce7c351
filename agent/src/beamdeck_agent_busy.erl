%%% @doc The schedulers' busy time over a stretch of code, in the terms the
%%% agent's cost is judged in (`npm run bench -- footprint'): the sum over
%%% schedulers of each one's busy share of the stretch, times its wall time.
%%%
%%% Reads `erlang:statistics(scheduler_wall_time)', which answers only while
%%% some process has the flag on; beamdeck_agent_system keeps it on for the
%%% agent's life (the flag is reference-counted per process, so this never
%%% switches off a host's). Without it, busy time is unknown (0).
%%%
%%% Each read is a request to every scheduler (measured 50-400 us, more on a
%%% loaded host; two a tick were 3-8 % of the sampler at 10k processes), so
%%% a periodic caller reads them every `?EVERY' stretches only (start/1,
%%% finish/3) and in between scales the last measured busy/wall ratio.
-module(beamdeck_agent_busy).

-export([sample/0, busy_us/2, new/0, start/1, finish/3]).

-export_type([sample/0, memo/0, started/0]).

%% Read the schedulers every this many stretches; the ratio in between.
-define(EVERY, 5).

-type sample() :: [{pos_integer(), non_neg_integer(), non_neg_integer()}] | undefined.
-opaque memo() :: {Left :: non_neg_integer(), Ratio :: float()}.
%% What start/1 gives finish/3: a real sample, or `estimate'.
-type started() :: {sample, sample()} | estimate.

%% @doc A memo whose first start/1 reads the schedulers.
-spec new() -> memo().
new() -> {0, 0.0}.

%% @doc Before a stretch: read the schedulers if due, else `estimate'.
-spec start(Memo) -> {started(), Memo} when Memo :: memo().
start({0, _} = Memo) -> {{sample, sample()}, Memo};
start({Left, Ratio}) -> {estimate, {Left - 1, Ratio}}.

%% @doc After a stretch of `WallUs': its busy microseconds, measured (and
%% the ratio kept for the next `?EVERY - 1' stretches) or estimated.
-spec finish(started(), WallUs, Memo) -> {non_neg_integer(), Memo}
    when WallUs :: non_neg_integer(), Memo :: memo().
finish(estimate, WallUs, {_, Ratio} = Memo) -> {round(Ratio * WallUs), Memo};
finish({sample, Before}, WallUs, _Memo) ->
    Busy = busy_us(Before, WallUs),
    {Busy, {?EVERY - 1, Busy / max(1, WallUs)}}.

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
