%%% @doc The process sampler: adaptive ticks that stream the process table as
%%% `procs' deltas and the supervision trees as `tree' frames (docs/protocol.md).
%%%
%%% Each tick, while the connection is up:
%%% <ol>
%%% <li>one walk over every process reads only the mailbox length (the cheap
%%%     scan) and finds processes the table does not know;</li>
%%% <li>new processes get full records; processes gone since the last tick are
%%%     removed;</li>
%%% <li>a rolling slice of the table is re-read and sent only if changed:
%%%     as many records as the budget leaves after the walk and the rest of
%%%     the tick (beamdeck_agent_budget:reads/4), so the whole table is
%%%     refreshed every few tens of ticks on a small node and more slowly
%%%     on a large one;</li>
%%% <li>the top-N by mailbox and by memory are re-read every tick and sent
%%%     when changed (the server keeps the last record).</li>
%%% </ol>
%%% Memory is not in the cheap scan (reading it costs ten times more), so the
%%% top-N by memory is chosen from the last known values: exact once per
%%% rolling cycle, and between cycles from the previous top-N plus what this
%%% tick re-read.
%%%
%%% The next interval comes from the agent's one cost budget
%%% (beamdeck_agent_budget): `max(min_interval_ms, cost / budget(N))', the
%%% budget a share of one scheduler, `budget_10k' at 10k processes or fewer,
%%% `budget_100k' at 100k or more, interpolated in between. The tick also
%%% measures the schedulers' busy time while it runs (beamdeck_agent_busy,
%%% read every few ticks, scaled in between)
%%% and stretches the interval to keep that inside the same budget: reading
%%% mailboxes makes the read processes work on other schedulers too, which
%%% the tick's own wall time leaves out; and it keeps the whole tick under a
%%% share of its own walk a second (the floor the agent is judged against).
%%% Either way at most 4 s (12 s in partial mode), so that a hot mailbox is
%%% seen in time (5 s at 100k); the tree walk is budgeted the same way
%%% (every 5 s or less often), and skipped while no process was born or
%%% died (tree/2). In partial mode
%%% with the system monitor ours (OTP 27+), hot mailboxes come as events
%%% and the budget alone decides.
%%%
%%% Above `full_table_max' processes the sampler is in partial mode
%%% (beamdeck_agent_hotspots): no table of every process, only the top-N by
%%% mailbox and by memory and hot pids, sent with `partial: true'. Hot pids
%%% come from beamdeck_agent_sysmon (OTP 27+, when the system monitor is
%%% free) and are sent at once by hot/1. The table of known processes is
%%% kept in compact ETS rows (beamdeck_agent_rows), not in the sampler's
%%% heap: a garbage collection never copies it, so the heap stays the size
%%% of one tick's work. Between ticks the sampler hibernates only where
%%% that pays (ticks 10 s or more apart, partial mode, where the walk's
%%% garbage is all the heap holds, or after a reset): else the wake-up
%%% costs as much as the walk. While the
%%% connection is down the sampler drops its table and only polls
%%% `beamdeck_agent_conn:connected/0'; `resync/0' (sent by the connection on
%%% `welcome', and by the `refresh' request) makes the next tick, at once, a
%%% full reset plus a `tree' frame. Frames stay under 512 KiB by chunking
%%% (beamdeck_agent_frames) and go to the connection paced
%%% (beamdeck_agent_pace).
%%%
%%% Over 400 lines: the full and the partial tick share the state record and
%%% its refresh/record helpers.
-module(beamdeck_agent_sampler).

-behaviour(gen_server).

-export([start_link/0, resync/0, hot/1, capabilities/0]).
-export([new/0, sample/1, sample/3, tree/2, interval_ms/2, budget/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([state/0]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([slice_take/4, tree_changed/6]).
-endif.

-define(SERVER, ?MODULE).
-define(TREE_EVERY_MS, 5000).
%% The tree walk is skipped while no process was born or died and the running
%% applications are the same (a tree changes with its processes, an upgrade
%% with its applications' versions); links between living processes and
%% stuck supervisors change neither, so a walk is also due this long after the
%% last one.
-define(TREE_STALE_MS, 30000).
-define(TREE_APPS_TIMEOUT_MS, 1000).
-define(MAX_INTERVAL_MS, 60000).
%% Hot-mailbox latency bounds the budget's stretching: a tick's cost is
%% measured in wall time, and on a busy host that counts time the OS gave
%% to others, which would otherwise stretch intervals past the point where a
%% hot mailbox is seen within 5 s (full table) or 15 s (partial, 1M).
-define(LATENCY_FULL_MS, 4000).
-define(LATENCY_PARTIAL_MS, 12000).
-define(ERROR_BACKOFF_MS, 5000).
%% Back-off: more frames than this waiting in the connection's queue at a
%% tick means the server (or the network) is not keeping up; the tick is
%% skipped (its frames would only wait, or push older ones out).
-define(BACKLOG_MAX, 16).
%% Rolling refresh: at most the whole table every ~30 ticks (100..2000
%% records a tick), fewer when the budget says so (slice_take/2), but at
%% least ?SLICE_FLOOR a tick so that every record is re-read in the end.
-define(SLICE_TICKS, 30).
-define(SLICE_MIN, 100).
-define(SLICE_MAX, 2000).
-define(SLICE_FLOOR, 10).
%% Hibernating between ticks compacts the heap to the state, but costs a
%% full copy of the table and a heap regrown on wake-up: at 10k processes
%% and ticks 2.5-4 s apart that cost as much as the walk. Only worth it when
%% ticks are far apart, in partial mode (the walk's garbage, no table) or
%% when the table's garbage copies are the memory goal's concern.
-define(HIBERNATE_MIN_MS, 10000).
%% From this many rows a tick's garbage (the walk's list, its maps) is
%% megabytes, and the heap, once grown for it, would stay that size: a
%% collection after the tick gives it back (the live state is small, the
%% rows are in ETS), at the cost of copying that small state once.
-define(SHRINK_ROWS, 50000).
%% Records re-read and emitted per batch (one frame's worth at most:
%% beamdeck_agent_frames packs at most 1000 records a frame). A reset sends
%% every record, in smaller frames: the records of a batch and the frames
%% waiting at the connection are what a reset at 100k holds in memory.
-define(MAX_UPSERT, 1000).
-define(RESET_BATCH, 250).
%% Partial mode: the memory of this many processes is read per tick (a
%% rolling slice), and at most this many hot pids wait for the next tick.
-define(PARTIAL_SLICE, 10000).
-define(MAX_HOT, 100).

%% Reductions creep by one for every signal-based read (ours included):
%% a record whose other fields did not change is sent again only once its
%% reductions grew this much since they were last sent.
-define(REDS_CHANGED, 100).

%% `table': the processes the server was sent, with hash and reductions as
%% last sent and memory as last read (ETS, owned by the sampler: sample/1
%% must run in the process that called new/0).
-record(s, {table :: beamdeck_agent_rows:rows(),
            %% Non-zero mailbox lengths as the server last saw them.
            nonzero = #{} :: #{pid() => pos_integer()},
            mem_top = [] :: [pid()],
            %% The previous scan's walk, to check membership by comparison.
            walked = [] :: [pid()],
            offset = 0 :: non_neg_integer(),
            apps = #{} :: beamdeck_agent_procinfo:app_cache(),
            seq = 0 :: non_neg_integer(),
            reset = true :: boolean(),
            tree_hash :: non_neg_integer() | undefined,
            tree_at :: integer() | undefined,
            tree_us = 0 :: non_neg_integer(),
            %% Processes were born or died since the last tree walk.
            tree_dirty = true :: boolean(),
            %% phash2 of the running applications at the last tree walk.
            tree_apps :: non_neg_integer() | undefined,
            timer :: reference() | undefined,
            interval = 1000 :: pos_integer(),
            failed = false :: boolean(),
            last_reset :: integer() | undefined,
            %% Partial mode (more than `full_table_max' processes): `table'
            %% holds only what the server was sent, the hot spots.
            partial = false :: boolean(),
            %% Processes the system monitor reported since the last tick.
            hot = #{} :: #{pid() => true},
            total = 0 :: non_neg_integer(),
            %% The last tick's walk alone (wall µs): the floor's pass, the
            %% unit of the budget relative to the floor (beamdeck_agent_budget).
            scan_us = 0 :: non_neg_integer(),
            %% The last tick's full-record reads: their wall µs, and µs per
            %% read (smoothed); and the rest of the tick beyond walk and
            %% reads (tree, packing, sending). They size the next slice.
            reads_us = 0 :: non_neg_integer(),
            read_us = 0 :: non_neg_integer(),
            other_us = 0 :: non_neg_integer(),
            %% Ticks skipped because the connection's queue was backed up.
            skipped = 0 :: non_neg_integer(),
            %% When the schedulers' busy time is next read (beamdeck_agent_busy).
            busy = beamdeck_agent_busy:new() :: beamdeck_agent_busy:memo()}).
-opaque state() :: #s{}.

%%% API %%%

%% @doc Start the sampler, registered as `beamdeck_agent_sampler'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Make the next tick, at once, a full `procs' reset and a `tree' frame.
-spec resync() -> ok.
resync() ->
    gen_server:cast(?SERVER, resync).

%% @doc A process's mailbox grew past the system monitor's limit
%% (beamdeck_agent_sysmon): send its record now, keep it in view next tick.
-spec hot(Pid) -> ok when Pid :: pid().
hot(Pid) when is_pid(Pid) ->
    gen_server:cast(?SERVER, {hot, Pid}).

%% @doc What `hello' announces for the process table: `partial_procs' (the
%% agent may send `partial: true') and the mailbox monitor's mode
%% (beamdeck_agent_sysmon: `mailbox_monitor_owned', `_host', `_unsupported', `_off').
-spec capabilities() -> [atom()].
capabilities() ->
    [partial_procs,
     list_to_atom("mailbox_monitor_" ++ atom_to_list(beamdeck_agent_sysmon:mode()))].

%%% SAMPLING (pure apart from reading processes; used by the tick, tests and bench) %%%

%% @doc A fresh sampler state: its first sample/1 is a reset. Its rows are
%% ETS tables owned by the caller, who alone may sample with it.
-spec new() -> state().
new() -> #s{table = beamdeck_agent_rows:new(), interval = setting(min_interval_ms)}.

%% @doc One sampling pass: the `procs' frames to send and the next state.
%% A state that needs a reset (new/0, resync/0) yields the whole table.
-spec sample(State) -> {Frames, State} when State :: state(), Frames :: [map()].
sample(S) ->
    {Rev, S1} = sample(S, fun(F, Acc) -> [F | Acc] end, []),
    {lists:reverse(Rev), S1}.

%% @doc sample/1 with each frame handed to `Emit' as soon as it is made
%% (`Emit(Frame, Acc)' returns the next `Acc'): a reset's records go out a
%% frame at a time instead of all being held until the end (at 100k
%% processes that was 125 MB of records in the sampler's heap).
-spec sample(State, Emit, Acc) -> {Acc, State}
    when State :: state(), Emit :: fun((map(), Acc) -> Acc), Acc :: term().
sample(#s{partial = Was} = S0, Emit, Acc) ->
    Partial = erlang:system_info(process_count) > setting(full_table_max),
    %% Crossing the limit either way starts the server's table over.
    S = case Partial =:= Was of
            true -> S0;
            false -> S0#s{partial = Partial, reset = true}
        end,
    Out = {Emit, Acc, S#s.seq, S#s.reset},
    {{_, Acc1, Seq, _}, S1} = case Partial of
                                  true -> sample_partial(S, Out);
                                  false -> sample_full(S, Out)
                              end,
    {Acc1, S1#s{seq = Seq}}.

sample_full(#s{reset = Reset, table = Rows} = S0, Out0) ->
    T0 = now_us(),
    S = case Reset of
            true ->
                ok = beamdeck_agent_rows:clear(Rows),
                S0#s{nonzero = #{}, mem_top = [], offset = 0, walked = []};
            false -> S0
        end,
    #s{nonzero = PrevNZ, offset = Offset} = S,
    Known = beamdeck_agent_rows:size(Rows),
    Take = slice_take(S, Known),
    Member = fun(P) -> beamdeck_agent_rows:member(Rows, P) end,
    %% A reset knows nothing: its walk is its order (one list, not three).
    Table = case Reset of
                true -> none;
                false -> Member
            end,
    #{nonzero := NZ, new := New, hits := Hits, slice := Slice, total := Total,
      walked := Walked, gone := Gone} = beamdeck_agent_procinfo:scan(Table, S#s.walked, Offset,
                                                                     Take),
    ScanUs = now_us() - T0,
    TopN = setting(top_n),
    Dead = dead(Rows, Known, Hits, Gone),
    ok = beamdeck_agent_rows:remove(Rows, Dead),
    MailTop = top_map(fun(N) -> N end, NZ, TopN),
    T1 = now_us(),
    %% A reset reads and sends every process it walked (all of them are new,
    %% the top-N among them), so it needs no dedup and no record of what was
    %% sent: at 100k processes those two maps were most of its heap.
    {Order, Seen0} = case Reset of
                         true -> {New, none};
                         false -> {unique(New ++ Slice ++ MailTop ++ S#s.mem_top ++ maps:keys(S#s.hot)),
                                   #{}}
                     end,
    {Seen, Gone1, S1, Out1} = stream(Order, NZ, Seen0, [], S, Out0),
    Wrapped = Reset orelse Offset + Take >= Total,
    MemTop = mem_top(Wrapped, Seen, S1#s.mem_top, Rows, TopN),
    %% The top-N by mailbox and by memory are re-read every tick and sent
    %% like any other record, only when changed: the server keeps the last
    %% one. Those of the memory top-N not read yet are read now (a few).
    Unread = case Seen of
                 none -> [];
                 _ -> [P || P <- MemTop, not is_map_key(P, Seen)]
             end,
    %% Gone2: processes that had a row and died before their re-read (removed).
    {Seen2, Gone2, S2, Out2} = stream(Unread, NZ, Seen, Gone1, S1, Out1),
    ReadsUs = now_us() - T1,
    %% After a reset the server has every row's mailbox in its record.
    Pairs = case Seen2 of
                none -> [];
                _ -> mailbox_pairs(NZ, PrevNZ, Member, maps:filter(fun(_, Sent) -> Sent end, Seen2))
            end,
    Chunks = beamdeck_agent_frames:pack([], Pairs, [beamdeck_agent_terms:pid(P)
                                                    || P <- unique(Dead ++ Gone2)]),
    CostUs = now_us() - T0,
    Size = beamdeck_agent_rows:size(Rows),
    %% A reset is a one-off (a connect, or a refresh at most every
    %% min_reset_interval_ms): it does not stretch the steady-state interval, or the
    %% first deltas after a connect would wait ~20 s at 100k processes.
    Interval = case Reset of
                   true -> setting(min_interval_ms);
                   false -> max(setting(min_interval_ms),
                                min(?LATENCY_FULL_MS, interval_ms(CostUs, Size)))
               end,
    Stats = #{scanUs => ScanUs, sampleUs => CostUs, intervalMs => Interval,
              treeUs => S#s.tree_us, dropped => beamdeck_agent_pace:dropped(),
              skipped => S#s.skipped},
    Out3 = emit(Chunks, false, Size, Stats, Out2),
    Born = Reset orelse New =/= [] orelse Dead =/= [] orelse Gone2 =/= [],
    S3 = S2#s{nonzero = maps:filter(fun(P, _) -> Member(P) end, NZ),
              tree_dirty = S2#s.tree_dirty orelse Born,
              mem_top = MemTop, walked = Walked,
              offset = case Wrapped of
                           true -> 0;
                           false -> Offset + Take
                       end,
              reset = false, interval = Interval, hot = #{},
              total = Size, scan_us = ScanUs, reads_us = ReadsUs,
              read_us = read_us(S#s.read_us, ReadsUs, reads(Seen2, Size) + length(Gone2))},
    {Out3, S3}.

%% How many records a tick read: after a reset, every row.
reads(none, Size) -> Size;
reads(Seen, _Size) -> map_size(Seen).

%% Re-read `Pids' (unique) a batch at a time and emit each batch's
%% changed records at once. `Seen': pid => whether its record was sent this
%% tick (`none': not kept, a reset).
stream([], _NZ, Seen, Gone, S, Out) -> {Seen, Gone, S, Out};
stream(Pids, NZ, Seen, Gone, S, Out) ->
    {Batch, Rest} = split(case Seen of
                              none -> ?RESET_BATCH;
                              _ -> ?MAX_UPSERT
                          end, Pids),
    {Done, Gone1, S1} = refresh(Batch, #{}, Gone, S),
    Upserts = [R || P <- Batch, changed(P, Done), {_, R} <- [record(P, Done, NZ)]],
    Seen1 = case Seen of
                none -> none;
                _ -> maps:fold(fun(P, _, Acc) -> Acc#{P => changed(P, Done)} end, Seen, Done)
            end,
    Out1 = case Upserts of
               [] -> Out;
               _ -> emit(beamdeck_agent_frames:pack(Upserts, [], []), false,
                         beamdeck_agent_rows:size(S1#s.table), #{}, Out)
           end,
    stream(Rest, NZ, Seen1, Gone1, S1, Out1).

%% The first `N' of `L' and the rest, without walking the rest (length/1 on
%% each batch of a 100k reset walked the list 100 times).
split(N, L) -> split(N, L, []).

split(0, L, Acc) -> {lists:reverse(Acc), L};
split(_, [], Acc) -> {lists:reverse(Acc), []};
split(N, [X | Xs], Acc) -> split(N - 1, Xs, [X | Acc]).

%% Hand `Chunks' as frames to the emitter; the first frame of a reset says so.
emit(Chunks, Partial, Total, Stats, {Emit, Acc, Seq, First}) ->
    {Frames, Seq1} = beamdeck_agent_frames:frames(Chunks, First, Partial, Total, Stats, Seq),
    {Emit, lists:foldl(Emit, Acc, Frames), Seq1, false}.

%% Partial mode: one walk (mailboxes, and memory over a rolling slice); full
%% records only for the top-N by mailbox and by memory and for hot pids;
%% `remove' for what left that set. Nothing per process is kept but the set.
sample_partial(#s{reset = Reset, table = Rows} = S0, Out) ->
    T0 = now_us(),
    S = case Reset of
            true ->
                ok = beamdeck_agent_rows:clear(Rows),
                S0#s{nonzero = #{}, mem_top = [], offset = 0, walked = []};
            false -> S0
        end,
    %% What the server was sent: a few hundred rows at most in this mode.
    Sent = beamdeck_agent_rows:keys(Rows),
    TopN = setting(top_n),
    #{nonzero := NZ, total := Total, mem := SliceMem} =
        beamdeck_agent_hotspots:scan(S#s.offset, ?PARTIAL_SLICE, TopN),
    ScanUs = now_us() - T0,
    MailTop = top_map(fun(N) -> N end, NZ, TopN),
    Hot = [P || P <- maps:keys(S#s.hot), is_map_key(P, NZ)],
    MemCandidates = unique(S#s.mem_top ++ SliceMem),
    Order = unique(MailTop ++ Hot ++ MemCandidates),
    {Refreshed, _Gone, S1} = refresh(Order, #{}, [], S),
    MemTop = beamdeck_agent_hotspots:top(
               [{beamdeck_agent_procinfo:memory(Dyn), P}
                || P <- MemCandidates, {Dyn, _, _} <- [maps:get(P, Refreshed, none)]], TopN),
    Keep = [P || P <- unique(MailTop ++ Hot ++ MemTop), is_map_key(P, Refreshed)],
    HotSet = maps:from_keys(Keep, true),
    ok = beamdeck_agent_rows:remove(Rows, [P || P <- beamdeck_agent_rows:keys(Rows),
                                                not is_map_key(P, HotSet)]),
    Upserts = [record(P, Refreshed, NZ) || P <- Keep, sent(P, Refreshed, HotSet)],
    Upserted = maps:from_keys([P || {P, _} <- Upserts], true),
    Removed = [P || P <- Sent, not is_map_key(P, HotSet)],
    Pairs = mailbox_pairs(maps:with(Keep, NZ), S#s.nonzero, fun(P) -> is_map_key(P, HotSet) end,
                          Upserted),
    Chunks = beamdeck_agent_frames:pack([R || {_, R} <- Upserts], Pairs,
                                        [beamdeck_agent_terms:pid(P) || P <- Removed]),
    CostUs = now_us() - T0,
    Interval = max(setting(min_interval_ms),
                   min(latency_cap(true), interval_ms(CostUs, Total))),
    Stats = #{scanUs => ScanUs, sampleUs => CostUs, intervalMs => Interval,
              treeUs => S#s.tree_us, dropped => beamdeck_agent_pace:dropped(),
              skipped => S#s.skipped},
    Out1 = emit(Chunks, true, Total, Stats, Out),
    Wrapped = S#s.offset + ?PARTIAL_SLICE >= Total,
    {Out1, S1#s{nonzero = maps:with(Keep, NZ), mem_top = MemTop,
                  offset = case Wrapped of
                               true -> 0;
                               false -> S#s.offset + ?PARTIAL_SLICE
                           end,
                  reset = false, interval = Interval, hot = #{}, total = Total,
                  scan_us = ScanUs, reads_us = 0}}.

%% @doc The `tree' frame if it is due and changed, or always when `Force' is
%% true; `[]' otherwise. Due every 5 s, or later if its last walk cost more
%% than the budget allows in 5 s (beamdeck_agent_budget); and then walked
%% only if it may have changed: processes born or died since the last walk
%% (full table; partial mode does not track them), other running
%% applications, or ?TREE_STALE_MS since the last walk.
-spec tree(State, Force) -> {Frames, State}
    when State :: state(), Force :: boolean(), Frames :: [map()].
tree(#s{tree_at = At} = S, Force) ->
    Now = erlang:monotonic_time(millisecond),
    Every = beamdeck_agent_budget:interval_ms(S#s.tree_us, budget(S#s.total),
                                              ?TREE_EVERY_MS, ?MAX_INTERVAL_MS),
    Due = Force orelse beamdeck_agent_budget:due(At, Every, Now),
    Running = case Due of
                  true -> running();
                  false -> S#s.tree_apps
              end,
    case Due andalso (Force orelse may_have_changed(S, Running, Now)) of
        false -> {[], S};
        true ->
            T0 = now_us(),
            Apps = beamdeck_agent_tree:apps(),
            Hash = erlang:phash2(Apps),
            %% The application cache is refreshed with the tree: apps come and go.
            S1 = S#s{tree_at = Now, tree_us = now_us() - T0, tree_hash = Hash, apps = #{},
                     tree_dirty = false, tree_apps = Running},
            case Force orelse Hash =/= S#s.tree_hash of
                true -> {[#{type => tree, at => beamdeck_agent_terms:now_ms(), apps => Apps}], S1};
                false -> {[], S1}
            end
    end.

may_have_changed(#s{partial = Partial, tree_dirty = Dirty, tree_apps = Was, tree_at = At},
                 Running, Now) ->
    tree_changed(Partial, Dirty, Was, Running, At, Now).

%% @doc Whether the tree may have changed since its last walk (at `At'):
%% no births or deaths are known in partial mode; `Dirty': some since the
%% walk; `Was'/`Running': the running applications then and now (hashed).
-spec tree_changed(Partial, Dirty, Was, Running, At, Now) -> boolean()
    when Partial :: boolean(), Dirty :: boolean(), Was :: term(), Running :: term(),
         At :: integer() | undefined, Now :: integer().
tree_changed(true, _Dirty, _Was, _Running, _At, _Now) -> true;
tree_changed(_Partial, true, _Was, _Running, _At, _Now) -> true;
tree_changed(_Partial, false, Was, Running, At, Now) ->
    Running =/= Was orelse At =:= undefined orelse Now - At >= ?TREE_STALE_MS.

%% The running applications and their versions, hashed: an upgrade changes a
%% version without a process being born or dying.
running() ->
    try erlang:phash2(application:which_applications(?TREE_APPS_TIMEOUT_MS))
    catch exit:_ -> undefined
    end.

%% @doc The next interval for a tick that cost `CostUs' with `N' processes:
%% `max(min_interval_ms, cost / budget(N))', at most 60 s.
-spec interval_ms(CostUs, N) -> pos_integer()
    when CostUs :: non_neg_integer(), N :: non_neg_integer().
interval_ms(CostUs, N) ->
    beamdeck_agent_budget:interval_ms(CostUs, budget(N), setting(min_interval_ms),
                                      ?MAX_INTERVAL_MS).

%% @doc The share of one scheduler the sampler may use with `N' processes:
%% `budget_10k' up to 10k, `budget_100k' from 100k, linear in between.
-spec budget(N) -> float() when N :: non_neg_integer().
budget(N) -> beamdeck_agent_budget:share(N).

%%% GEN_SERVER %%%

%% @private
-spec init([]) -> {ok, state()}.
init([]) ->
    S = new(),
    ok = sweep_mode(S),
    {ok, schedule(S#s.interval, S)}.

%% @private
-spec handle_call(term(), gen_server:from(), state()) -> {reply, {error, unknown_call}, state()}.
handle_call(_Request, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(resync, #s{reset = true} = S) ->
    %% A reset is pending already (first tick, or after a disconnect): now.
    {noreply, schedule(0, S)};
handle_cast(resync, #s{last_reset = Last} = S) ->
    %% While streaming, full resets are rate-limited: at 100k processes one
    %% costs about a second of a scheduler.
    Now = erlang:monotonic_time(millisecond),
    Wait = case Last of
               undefined -> 0;
               _ -> max(0, Last + setting(min_reset_interval_ms) - Now)
           end,
    {noreply, schedule(Wait, S#s{reset = true})};
handle_cast({hot, Pid}, S) ->
    {noreply, hot_now(Pid, S)};
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()}.
handle_info({timeout, Ref, tick}, #s{timer = Ref} = S) ->
    case connected() of
        false ->
            %% Nothing is sampled while disconnected; the next connection
            %% starts with a reset anyway.
            {noreply, schedule(setting(min_interval_ms), idle(S))};
        true ->
            case beamdeck_agent_pace:backlog() > ?BACKLOG_MAX of
                true ->
                    %% The server is slow: wait a whole interval more, the
                    %% table unchanged (the next tick's deltas cover the gap).
                    {noreply, schedule(S#s.interval, S#s{skipped = S#s.skipped + 1})};
                false ->
                    S1 = tick(S),
                    %% After a reset (every record read and sent) the heap
                    %% grew for it: compact it once rather than keep it.
                    case S#s.reset orelse hibernate(S1) of
                        true -> {noreply, S1, hibernate};
                        false ->
                            shrink(S1),
                            {noreply, S1}
                    end
            end
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

tick(S) ->
    try
        Reset = S#s.reset,
        LastReset = case Reset of
                        true -> erlang:monotonic_time(millisecond);
                        false -> S#s.last_reset
                    end,
        {Busy0, BusyMemo} = beamdeck_agent_busy:start(S#s.busy),
        T0 = now_us(),
        %% The sample first: it tells the tree walk whether processes were
        %% born or died (else the walk is skipped).
        {ok, S1} = sample(S#s{last_reset = LastReset},
                          fun(F, ok) -> beamdeck_agent_pace:send(F) end, ok),
        {TreeFrames, S2} = tree(S1, Reset),
        lists:foreach(fun beamdeck_agent_conn:send/1, TreeFrames),
        WallUs = now_us() - T0,
        {BusyUs, BusyMemo1} = beamdeck_agent_busy:finish(Busy0, WallUs, BusyMemo),
        Interval = case Reset of
                       true -> S2#s.interval;
                       false -> stretch(S2#s.interval, BusyUs, WallUs, S2)
                   end,
        Other = max(0, WallUs - S2#s.scan_us - S2#s.reads_us),
        ok = sweep_mode(S2),
        schedule(Interval, S2#s{interval = Interval, failed = false, other_us = Other,
                                busy = BusyMemo1})
    catch
        Class:Reason:Stack ->
            %% Log the first failure of a run only; start over with a reset.
            _ = S#s.failed orelse
                logger:warning("beamdeck sampler tick failed: ~0tp",
                               [{Class, Reason, lists:sublist(Stack, 5)}]),
            S3 = idle(S),
            schedule(max(S#s.interval, ?ERROR_BACKOFF_MS), S3#s{failed = true})
    end.

%% Keep nothing but the counters; the next tick is a reset with a tree.
idle(S) ->
    ok = beamdeck_agent_rows:clear(S#s.table),
    S#s{nonzero = #{}, mem_top = [], walked = [], offset = 0, apps = #{},
        reset = true, tree_hash = undefined, tree_at = undefined, tree_dirty = true,
        tree_apps = undefined}.

schedule(Ms, #s{timer = Old} = S) ->
    _ = case Old of
            undefined -> ok;
            _ -> erlang:cancel_timer(Old, [{async, true}, {info, false}])
        end,
    S#s{timer = erlang:start_timer(Ms, self(), tick)}.

connected() ->
    try beamdeck_agent_conn:connected() =:= true
    catch _:_ -> false
    end.

%%% TICK INTERNALS %%%

%% The budget spent in the terms it is judged in: the schedulers' busy time
%% during the tick (reading another process's mailbox makes that process
%% work too, on another scheduler: at 1M processes this was 2-3x the tick's
%% wall time). Busy time includes the host's own work meanwhile, so a busy
%% host makes the agent back off further, within the latency bound. And the
%% whole tick (tree, encoding and sending included) against its own walk,
%% which is the floor's pass: at most a fixed share of one pass a second.
stretch(Interval, BusyUs, WallUs, #s{partial = Partial, total = N, scan_us = ScanUs}) ->
    Budgeted = max(interval_ms(BusyUs, N), beamdeck_agent_budget:floor_interval_ms(WallUs, ScanUs)),
    max(Interval, min(latency_cap(Partial), Budgeted)).

%% How far the budget may stretch the interval. In partial mode with the
%% system monitor ours, hot mailboxes arrive as events (hot/1), so scans
%% need not be frequent: the budget alone decides (up to 60 s).
latency_cap(false) -> ?LATENCY_FULL_MS;
latency_cap(true) ->
    case beamdeck_agent_sysmon:mode() of
        owned -> ?MAX_INTERVAL_MS;
        _ -> ?LATENCY_PARTIAL_MS
    end.

%% A hot mailbox (system monitor): its record goes out now, in a frame of
%% its own, and it is in the table (so the next tick keeps or removes it).
%% Nothing is sent while a reset is pending or the connection is down.
hot_now(_Pid, #s{reset = true} = S) -> S;
hot_now(_Pid, #s{hot = Hot} = S) when map_size(Hot) >= ?MAX_HOT -> S;
hot_now(Pid, S) ->
    case connected() andalso read_hot(Pid, S#s.apps) of
        {Dyn, Static, Len, Apps} ->
            Record = beamdeck_agent_procinfo:record(Pid, Dyn, Static, Len),
            {Frames, Seq} = beamdeck_agent_frames:frames([{[Record], [], []}], false, S#s.partial,
                                                         S#s.total,
                                                         #{dropped => beamdeck_agent_pace:dropped()},
                                                         S#s.seq),
            lists:foreach(fun beamdeck_agent_conn:send/1, Frames),
            ok = beamdeck_agent_rows:put(S#s.table, Pid,
                                         {beamdeck_agent_procinfo:hash(Dyn),
                                          beamdeck_agent_procinfo:reductions(Dyn),
                                          beamdeck_agent_procinfo:memory(Dyn), Static}),
            S#s{seq = Seq, apps = Apps,
                nonzero = nonzero(Pid, Len, S#s.nonzero), hot = (S#s.hot)#{Pid => true}};
        _ ->
            S
    end.

nonzero(Pid, 0, NZ) -> maps:remove(Pid, NZ);
nonzero(Pid, Len, NZ) -> NZ#{Pid => Len}.

read_hot(Pid, Apps) ->
    case beamdeck_agent_procinfo:read_new(Pid, Apps) of
        undefined -> undefined;
        {Dyn, Static, Apps1} ->
            case erlang:process_info(Pid, message_queue_len) of
                {message_queue_len, Len} -> {Dyn, Static, Len, Apps1};
                undefined -> undefined
            end
    end.

slice_size(N) ->
    min(?SLICE_MAX, max(?SLICE_MIN, (N + ?SLICE_TICKS - 1) div ?SLICE_TICKS)).

%% The rolling slice from what the budget leaves after the walk and the
%% rest of the tick (beamdeck_agent_budget:reads/4, at the longest interval
%% the latency goal allows), the top-N re-reads counted first; at most
%% slice_size/1, at least ?SLICE_FLOOR. Before anything is measured:
%% slice_size/1.
slice_take(#s{scan_us = ScanUs, other_us = OtherUs, read_us = ReadUs}, N) ->
    case beamdeck_agent_budget:reads(ScanUs, OtherUs, ReadUs, ?LATENCY_FULL_MS) of
        unknown -> slice_size(N);
        Reads -> min(slice_size(N), max(?SLICE_FLOOR, Reads - 2 * setting(top_n)))
    end.

-ifdef(TEST).
%% @doc slice_take/2 for given costs (µs) and table size.
-spec slice_take(ScanUs, OtherUs, ReadUs, N) -> pos_integer()
    when ScanUs :: non_neg_integer(), OtherUs :: non_neg_integer(),
         ReadUs :: non_neg_integer(), N :: non_neg_integer().
slice_take(ScanUs, OtherUs, ReadUs, N) ->
    slice_take(#s{scan_us = ScanUs, other_us = OtherUs, read_us = ReadUs}, N).
-endif.

%% µs per full-record read, half the last tick's and half the history: one
%% tick's reads are few and their cost varies (new processes cost more).
read_us(Prev, _Us, 0) -> Prev;
read_us(0, Us, Reads) -> max(1, Us div Reads);
read_us(Prev, Us, Reads) -> max(1, (Prev + Us div Reads) div 2).

shrink(#s{total = N}) when N >= ?SHRINK_ROWS -> _ = erlang:garbage_collect(), ok;
shrink(_S) -> ok.

%% With the full table every collection is a full sweep: a tick's live data
%% is two walks' pid lists (1.6 MB each at 100k processes), and minor
%% collections left their copies in the old heap as garbage (heap peak 12.7
%% MB at 100k, 9.7 MB with full sweeps, no slower). Not in partial mode: at
%% 1M processes on OTP 25 the walk's list alone is 16 MB, copied by each
%% full sweep.
sweep_mode(#s{partial = Partial}) ->
    Sweep = case Partial of
                true -> element(2, erlang:system_info(fullsweep_after));
                false -> 0
            end,
    _ = process_flag(fullsweep_after, Sweep),
    ok.

%% Hibernate after a tick only where it pays (see ?HIBERNATE_MIN_MS).
hibernate(#s{partial = true}) -> true;
hibernate(#s{interval = I}) -> I >= ?HIBERNATE_MIN_MS.

%% Known pids not seen alive by the scan. Only looked for when some are
%% missing (most ticks, some did die: request workers come and go). The
%% scan found most on its way (`Gone'); when they are as many as are
%% missing, that is all of them. Else every row is asked (at 10k processes
%% that pass was a tenth of the sampler's time, eprof).
dead(_Rows, Known, Hits, _Gone) when Known =< Hits -> [];
dead(Rows, Known, Hits, Gone) ->
    Found = unique([P || P <- Gone, beamdeck_agent_rows:member(Rows, P)]),
    case length(Found) =:= Known - Hits of
        true -> Found;
        false -> beamdeck_agent_rows:dead(Rows)
    end.

%% Re-read full records of `Pids' not yet in `Done' (pid => {Dyn, Static, Changed}).
%% A process seen for the first time is read with its static fields. `Gone':
%% processes that had a row and are dead (their rows removed).
refresh([], Done, Gone, S) -> {Done, Gone, S};
refresh([P | Ps], Done, Gone, S) when is_map_key(P, Done) -> refresh(Ps, Done, Gone, S);
refresh([P | Ps], Done, Gone, #s{table = Rows} = S) ->
    Known = beamdeck_agent_rows:get(Rows, P),
    case read(P, Known, S) of
        undefined when Known =:= undefined ->
            refresh(Ps, Done, Gone, S);
        undefined ->
            ok = beamdeck_agent_rows:remove(Rows, [P]),
            refresh(Ps, Done, [P | Gone], S);
        {Dyn, Static, S1} ->
            Hash = beamdeck_agent_procinfo:hash(Dyn),
            Reds = beamdeck_agent_procinfo:reductions(Dyn),
            Mem = beamdeck_agent_procinfo:memory(Dyn),
            Changed =
                case Known of
                    {Hash, SentReds, _, _} ->
                        Same = beamdeck_agent_rows:reds_grown(SentReds, Reds) < ?REDS_CHANGED,
                        Kept = case Same of
                                   true -> SentReds;
                                   false -> Reds
                               end,
                        true = beamdeck_agent_rows:update(Rows, P, Hash, Kept, Mem),
                        not Same;
                    {_, _, _, _} ->
                        true = beamdeck_agent_rows:update(Rows, P, Hash, Reds, Mem),
                        true;
                    undefined ->
                        ok = beamdeck_agent_rows:put(Rows, P, {Hash, Reds, Mem, Static}),
                        true
                end,
            refresh(Ps, Done#{P => {Dyn, Static, Changed}}, Gone, S1)
    end.

%% Known: the dynamic items only. New: also the static fields.
read(P, {_, _, _, Static}, S) ->
    case beamdeck_agent_procinfo:read(P) of
        undefined -> undefined;
        Dyn -> {Dyn, Static, S}
    end;
read(P, undefined, #s{apps = Apps} = S) ->
    case beamdeck_agent_procinfo:read_new(P, Apps) of
        undefined -> undefined;
        {Dyn, Static, Apps1} -> {Dyn, Static, S#s{apps = Apps1}}
    end.

%% Top-N by memory: exact over the table once per rolling cycle, else from
%% the previous top-N and what this tick re-read.
mem_top(true, _Refreshed, _Prev, Rows, N) ->
    beamdeck_agent_rows:top_memory(Rows, N);
mem_top(false, Refreshed, Prev, Rows, N) ->
    Candidates = unique(Prev ++ maps:keys(Refreshed)),
    beamdeck_agent_hotspots:top([{Mem, P} || P <- Candidates,
                                             Mem <- [beamdeck_agent_rows:memory(Rows, P)],
                                             Mem =/= undefined], N).

top_map(Value, Map, N) -> beamdeck_agent_hotspots:top_map(Value, Map, N).

sent(P, Refreshed, Hot) ->
    case Refreshed of
        #{P := {_, _, true}} -> true;
        #{P := _} -> is_map_key(P, Hot);
        _ -> false
    end.

%% Whether `P' was re-read and its record changed since last sent.
changed(P, Refreshed) ->
    case Refreshed of
        #{P := {_, _, Changed}} -> Changed;
        _ -> false
    end.

record(P, Refreshed, NZ) ->
    #{P := {Dyn, Static, _}} = Refreshed,
    {P, beamdeck_agent_procinfo:record(P, Dyn, Static, maps:get(P, NZ, 0))}.

%% `[Pid, Len]' for every mailbox the server does not know yet, leaving out
%% processes sent in full this tick and processes removed (`Member' false).
mailbox_pairs(NZ, PrevNZ, Member, Upserted) ->
    Keep = fun(P) -> Member(P) andalso not is_map_key(P, Upserted) end,
    Grown = maps:fold(fun(P, N, Acc) ->
                              case PrevNZ of
                                  #{P := N} -> Acc;
                                  _ ->
                                      case Keep(P) of
                                          true -> [[beamdeck_agent_terms:pid(P), N] | Acc];
                                          false -> Acc
                                      end
                              end
                      end, [], NZ),
    maps:fold(fun(P, _, Acc) ->
                      case not is_map_key(P, NZ) andalso Keep(P) of
                          true -> [[beamdeck_agent_terms:pid(P), 0] | Acc];
                          false -> Acc
                      end
              end, Grown, PrevNZ).

unique(L) -> unique(L, #{}).

unique([], _) -> [];
unique([X | Xs], Seen) when is_map_key(X, Seen) -> unique(Xs, Seen);
unique([X | Xs], Seen) -> [X | unique(Xs, Seen#{X => true})].

setting(Key) -> beamdeck_agent_config:get(Key).

now_us() -> erlang:monotonic_time(microsecond).
