%%% @doc The agent's one cost budget (issue 17): every periodic pass
%%% measures its real cost and stretches its own interval to stay inside a
%%% share of one scheduler. The sampler's ticks, the supervision tree and the
%%% passes the server polls (`old_code', `system_overview') all use it.
%%%
%%% Two limits, the tighter wins:
%%% <ul>
%%% <li>an absolute share of one scheduler (the `budget_10k'/`budget_100k'
%%%     settings, interpolated by process count: share/1);</li>
%%% <li>a share relative to the floor the agent is judged against (a
%%%     `message_queue_len' pass over every process once a second): the
%%%     sampler's own scan is that pass, so its measured cost is the floor,
%%%     and the whole tick may cost at most `?FLOOR_RATIO' of it a second
%%%     (floor_interval_ms/2).</li>
%%% </ul>
%%% Passes the server polls are answered from the last result while the
%%% budget says the pass is not due again (memo/5); the reply's `at' says
%%% how old it is. The memo lives in a public ETS table owned by a
%%% long-lived agent process (new_table/0); without it every call runs.
-module(beamdeck_agent_budget).

-export([share/1, interval_ms/4, floor_interval_ms/2, reads/4, new_table/0, memo/5, due/3]).

-define(TABLE, ?MODULE).
%% Of the floor's cost a second, what the sampler's ticks may spend. Issue 17
%% asks ≤ 0.5× for the whole agent; the rest (tree, polls, encoding,
%% sending) gets what is left.
-define(FLOOR_RATIO, 0.4).
%% A polled pass is re-run at least this often whatever its cost.
-define(MEMO_MAX_MS, 60000).

%% @doc The absolute share of one scheduler a pass may use with `N'
%% processes: `budget_10k' up to 10k, `budget_100k' from 100k, linear in between.
-spec share(N) -> float() when N :: non_neg_integer().
share(N) when N =< 10000 -> float(setting(budget_10k));
share(N) when N >= 100000 -> float(setting(budget_100k));
share(N) ->
    Lo = setting(budget_10k),
    Hi = setting(budget_100k),
    Lo + (Hi - Lo) * (N - 10000) / 90000.

%% @doc The interval that keeps a pass costing `CostUs' inside `Share' of one
%% scheduler: `CostUs / Share', within `[MinMs, MaxMs]'.
-spec interval_ms(CostUs, Share, MinMs, MaxMs) -> pos_integer()
    when CostUs :: non_neg_integer(), Share :: float(), MinMs :: pos_integer(),
         MaxMs :: pos_integer().
interval_ms(CostUs, Share, MinMs, MaxMs) when Share > 0 ->
    min(MaxMs, max(MinMs, ceil(CostUs / 1000 / Share))).

%% @doc The interval that keeps a tick costing `TickUs' under `?FLOOR_RATIO'
%% of the floor, whose one pass costs `ScanUs' (the tick's own walk): at
%% least `TickUs / (?FLOOR_RATIO * ScanUs)' seconds. `0' when the scan cost
%% is unknown.
-spec floor_interval_ms(TickUs, ScanUs) -> non_neg_integer()
    when TickUs :: non_neg_integer(), ScanUs :: non_neg_integer().
floor_interval_ms(_TickUs, 0) -> 0;
floor_interval_ms(TickUs, ScanUs) ->
    ceil(1000 * TickUs / (?FLOOR_RATIO * ScanUs)).

%% @doc How many full records a tick may re-read so that it stays inside
%% `?FLOOR_RATIO' of the floor at the interval `IntervalMs' (the longest
%% the latency goal allows): what is left of `?FLOOR_RATIO * ScanUs' a
%% second after the walk itself (`ScanUs') and the tick's other work
%% (`OtherUs': tree, packing, sending), at `ReadUs' a record. `unknown'
%% before the first tick has measured the walk and a read.
-spec reads(ScanUs, OtherUs, ReadUs, IntervalMs) -> non_neg_integer() | unknown
    when ScanUs :: non_neg_integer(), OtherUs :: non_neg_integer(),
         ReadUs :: non_neg_integer(), IntervalMs :: pos_integer().
reads(0, _OtherUs, _ReadUs, _IntervalMs) -> unknown;
reads(_ScanUs, _OtherUs, 0, _IntervalMs) -> unknown;
reads(ScanUs, OtherUs, ReadUs, IntervalMs) ->
    Allowed = ?FLOOR_RATIO * ScanUs * IntervalMs / 1000,
    max(0, floor((Allowed - ScanUs - OtherUs) / ReadUs)).

%% @doc Create the memo table (call from a process that lives as long as
%% the agent); `ok' if it exists already.
-spec new_table() -> ok.
new_table() ->
    case ets:info(?TABLE, name) of
        undefined ->
            _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
            ok;
        _ ->
            ok
    end.

%% @doc `Fun()''s last result for the pass `Pass' while it is not due again
%% (it cost `C' µs and ran `T' ms ago with `T < C / share(N)') and `Stamp'
%% is the same, else a fresh one. `Stamp' is whatever makes an old result
%% wrong (e.g. which modules have old code): a change runs the pass at once.
%% One entry per pass: the table stays as small as the number of passes.
-spec memo(Pass, Stamp, N, MinMs, Fun) -> Result
    when Pass :: atom(), Stamp :: term(), N :: non_neg_integer(), MinMs :: pos_integer(),
         Fun :: fun(() -> Result), Result :: term().
memo(Pass, Stamp, N, MinMs, Fun) ->
    Now = erlang:monotonic_time(millisecond),
    case lookup(Pass) of
        {Stamp, At, Interval, Result} when Now - At < Interval -> Result;
        _ ->
            T0 = erlang:monotonic_time(microsecond),
            Result = Fun(),
            CostUs = erlang:monotonic_time(microsecond) - T0,
            store(Pass, {Stamp, Now, interval_ms(CostUs, share(N), MinMs, ?MEMO_MAX_MS), Result}),
            Result
    end.

%% @doc Is a pass that last ran at `At' (monotonic ms, or `undefined': never)
%% due again, its interval being `IntervalMs'?
-spec due(At, IntervalMs, Now) -> boolean()
    when At :: integer() | undefined, IntervalMs :: non_neg_integer(), Now :: integer().
due(undefined, _IntervalMs, _Now) -> true;
due(At, IntervalMs, Now) -> Now - At >= IntervalMs.

lookup(Key) ->
    try ets:lookup(?TABLE, Key) of
        [{_, Entry}] -> Entry;
        [] -> none
    catch error:badarg -> none
    end.

store(Key, Entry) ->
    try ets:insert(?TABLE, {Key, Entry}), ok
    catch error:badarg -> ok
    end.

setting(Key) -> beamdeck_agent_config:get(Key).
