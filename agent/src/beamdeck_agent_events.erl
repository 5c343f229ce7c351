%%% @doc Seq-numbered, bounded, replayable events (docs/protocol.md,
%%% `event`): supervisor, crash and progress reports from
%%% `beamdeck_agent_logger_h`, SASL alarms from `beamdeck_agent_alarm_h`,
%%% and events other agent modules add with `notify/1`.
%%%
%%% Every event gets the next sequence number of this boot (1, 2, 3…; the
%%% counter outlives a restart of this process, so seqs never repeat within
%%% a boot) and stays buffered until the server acknowledges it. The buffer
%%% is bounded by count (`event_buffer`) and by bytes (`event_buffer_bytes`;
%%% these settings and their defaults: beamdeck_agent_config); on overflow the oldest events
%%% are dropped and counted, and the count goes out as an `agent` event
%%% (`"dropped": N`, at most one per second, only when it changed). The
%%% first event sent after dropped ones declares them (`droppedSeqs`:
%%% `[From, To]`, capability `dropped_seqs`), so the server acks past the
%%% gap and records it instead of paging about suppressed events.
%%%
%%% Sending: while connected a new event is sent at once (up to a burst per
%%% second); replays (`connected/1`, re-sends) are paced: every 100 ms at most
%%% `?BATCH` frames, and only while the conn's outbound queue (its `stats/0`
%%% `queued`) is below half its `max_queue`. Events not acknowledged for
%%% `event_resend_ms` are sent again (go-back-N; the server deduplicates on
%%% (node, bootId, seq)).
%%%
%%% Overload: the handlers count in-flight events in an atomics array (see
%%% `submit/2`); past `event_inflight_max` they drop and count
%%% instead of sending, so a flood can neither block the logging processes
%%% nor grow this mailbox without bound.
%%%
%%% Size (over 400 lines, on purpose): one gen_server; the buffer, acks,
%%% pacing and overload counts all change its one state together.
-module(beamdeck_agent_events).
-behaviour(gen_server).

-export([start_link/0, last_seq/0, connected/1, connected/2, ack/1, stats/0, notify/1,
         notify_watched/1, delivery/1, submit/2, count_handler_error/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([sink/0]).

-define(SERVER, ?MODULE).
-define(HANDLER_ID, beamdeck_agent_logger_h).
-define(SEQ_KEY, {?MODULE, seq}).
-define(EVENT_MSG, '$beamdeck_agent_event').

%% Slots of the sink's atomics array.
-define(INFLIGHT, 1).
-define(OVERLOAD, 2).
-define(HANDLER_ERRORS, 3).

-define(TICK_MS, 1000).
-define(PUMP_MS, 100).
-define(BATCH, 100).
-define(PROBE_TIMEOUT, 500).
-define(CALL_TIMEOUT, 5000).
-define(LOGGER_TIMEOUT, 5000).
-define(ALARM_RETRY_MS, 5000).
%% Per-event overhead beyond the map's external size (queue cell, seq, bootId).
-define(ENTRY_OVERHEAD, 64).
%% Watched seqs (notify_watched/1): a few journaled outcomes at a time.
-define(MAX_WATCHED, 64).

-type sink() :: {pid(), atomics:atomics_ref(), pos_integer()}.
%% Where handlers deliver: the events process, its in-flight/overload
%% counters and the in-flight limit.

-type entry() :: {Seq :: pos_integer(), Size :: non_neg_integer(), Frame :: map()}.

-record(st, {
    boot_id :: binary(),
    seq :: atomics:atomics_ref(),
    sink :: sink(),
    %% Sent on this connection, not yet acknowledged (oldest first); every
    %% seq in `sent` is below every seq in `pending`.
    sent = queue:new() :: queue:queue(entry()),
    %% Not yet sent on this connection (oldest first).
    pending = queue:new() :: queue:queue(entry()),
    len = 0 :: non_neg_integer(),
    bytes = 0 :: non_neg_integer(),
    max_len :: pos_integer(),
    max_bytes :: pos_integer(),
    acked = 0 :: non_neg_integer(),
    dropped = 0 :: non_neg_integer(),
    %% The highest seq the buffer dropped on overflow (0: none).
    dropped_upto = 0 :: non_neg_integer(),
    reported = {0, 0} :: {non_neg_integer(), non_neg_integer()},
    connected = false :: boolean(),
    %% The conn's connection number from `connected/2' (undefined: `connected/1').
    session :: pos_integer() | undefined,
    budget = ?BATCH :: non_neg_integer(),
    high_water :: pos_integer(),
    resend_ms :: pos_integer(),
    last_progress = 0 :: integer(),
    pump = false :: boolean(),
    handler = false :: boolean(),
    handler_warned = false :: boolean(),
    alarm :: pid() | undefined,
    alarm_retry_at = 0 :: integer(),
    %% Seqs whose delivery someone asks about (notify_watched/1): `lost'
    %% once the buffer dropped them; acked once `acked' reaches them.
    watched = #{} :: #{pos_integer() => pending | lost}
}).

%%% API %%%

%% @doc Start the events process (registered `beamdeck_agent_events`); it
%% installs the logger handler and the alarm handler.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc The last seq produced in this boot (0 if none). Reads a counter, never
%% calls the events process, so `beamdeck_agent_conn` can use it while the
%% events process is waiting on the conn.
-spec last_seq() -> non_neg_integer().
last_seq() ->
    case persistent_term:get(?SEQ_KEY, undefined) of
        {_BootId, Ref} -> atomics:get(Ref, 1);
        undefined -> 0
    end.

%% @doc The conn got `welcome`: drop events up to `LastSeqSeenByServer` and
%% send the rest, in order, paced.
-spec connected(LastSeqSeenByServer) -> ok when LastSeqSeenByServer :: non_neg_integer().
connected(LastSeq) when is_integer(LastSeq), LastSeq >= 0 ->
    gen_server:cast(?SERVER, {connected, LastSeq, undefined}).

%% @doc The conn's connection number `Session' got `welcome': as
%% `connected/1', and every event is sent for that connection only
%% (`beamdeck_agent_conn:send/2'), so none sent before this call reaches a
%% newer connection ahead of the replay.
-spec connected(LastSeqSeenByServer, Session) -> ok
    when LastSeqSeenByServer :: non_neg_integer(), Session :: pos_integer().
connected(LastSeq, Session) when is_integer(LastSeq), LastSeq >= 0, is_integer(Session), Session > 0 ->
    gen_server:cast(?SERVER, {connected, LastSeq, Session}).

%% @doc The server stored every event up to `Seq` (cumulative ack).
-spec ack(Seq) -> ok when Seq :: non_neg_integer().
ack(Seq) when is_integer(Seq), Seq >= 0 ->
    gen_server:cast(?SERVER, {ack, Seq}).

%% @doc Counters: `buffered` (unacknowledged events held), `dropped` (buffer
%% overflow), `lastSeq`, `overloadDrops` (dropped by the handlers), and a few
%% more for diagnosis.
-spec stats() -> #{atom() => term()}.
stats() ->
    gen_server:call(?SERVER, stats, ?CALL_TIMEOUT).

%% @doc Add an event from agent code (e.g. an upgrade outcome). `Event` must
%% have `kind` (binary or atom) and may have `at`; `type`, `seq` and `bootId`
%% are added. Other fields must match the protocol's event schema: the
%% server stores an event it refuses as a refused `event_gap' (and pages).
-spec notify(Event) -> ok when Event :: map().
notify(#{kind := K} = Event) when is_binary(K); is_atom(K) ->
    gen_server:cast(?SERVER, {notify, Event}).

%% @doc As `notify/1', for an event its caller keeps in a journal until the
%% server stored it (the fallback outcome): returns the event's seq, to ask
%% `delivery/1' about. `{error, not_running}' when the events process is
%% absent or does not answer.
-spec notify_watched(Event) -> {ok, Seq} | {error, not_running}
    when Event :: map(), Seq :: pos_integer().
notify_watched(#{kind := K} = Event) when is_binary(K); is_atom(K) ->
    try gen_server:call(?SERVER, {notify_watched, Event}, ?CALL_TIMEOUT)
    catch exit:_ -> {error, not_running}
    end.

%% @doc Where the watched event `Seq' is: `acked' (the server stored it),
%% `pending', or `lost' (the buffer dropped it, or this events process never
%% had it: it restarted since). A lost event is the caller's to send again.
-spec delivery(Seq) -> acked | pending | lost when Seq :: pos_integer().
delivery(Seq) when is_integer(Seq), Seq > 0 ->
    try gen_server:call(?SERVER, {delivery, Seq}, ?CALL_TIMEOUT)
    catch exit:_ -> pending
    end.

%% @doc Hand an event to the events process from a handler, without blocking:
%% returns `dropped` (and counts it) when too many events are in flight,
%% else builds the event with `Build` in the calling process and sends it.
-spec submit(Sink, Build) -> ok | dropped when Sink :: sink(), Build :: fun(() -> map()).
submit({Pid, Ref, Max}, Build) ->
    case atomics:add_get(Ref, ?INFLIGHT, 1) > Max of
        true ->
            atomics:sub(Ref, ?INFLIGHT, 1),
            atomics:add(Ref, ?OVERLOAD, 1),
            dropped;
        false ->
            try Build() of
                Event ->
                    Pid ! {?EVENT_MSG, Event},
                    ok
            catch Class:Reason:Stack ->
                atomics:sub(Ref, ?INFLIGHT, 1),
                erlang:raise(Class, Reason, Stack)
            end
    end.

%% @doc Count a failure inside a handler (shown as `handlerErrors`). Never raises.
-spec count_handler_error(Sink) -> ok when Sink :: term().
count_handler_error({_Pid, Ref, _Max}) ->
    try atomics:add(Ref, ?HANDLER_ERRORS, 1) catch _:_ -> ok end;
count_handler_error(_) ->
    ok.

%%% GEN_SERVER CALLBACKS %%%

%% @doc gen_server callback.
-spec init([]) -> {ok, #st{}}.
init([]) ->
    process_flag(trap_exit, true),
    BootId = beamdeck_agent_config:boot_id(),
    MaxQueue = setting(max_queue),
    Sink = {self(), atomics:new(3, [{signed, true}]), setting(event_inflight_max)},
    St = #st{boot_id = BootId, seq = seq_counter(BootId), sink = Sink,
             max_len = setting(event_buffer),
             max_bytes = setting(event_buffer_bytes),
             high_water = max(1, MaxQueue div 2),
             resend_ms = setting(event_resend_ms),
             last_progress = beamdeck_agent_terms:monotonic_ms()},
    _ = erlang:send_after(?TICK_MS, self(), tick),
    {ok, start_alarm(install_handler(St))}.

%% @doc gen_server callback.
-spec handle_call(stats | term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(stats, _From, #st{sink = {_, Ref, _}} = St) ->
    {reply, #{buffered => St#st.len, dropped => St#st.dropped, lastSeq => last_seq(),
              overloadDrops => atomics:get(Ref, ?OVERLOAD),
              handlerErrors => atomics:get(Ref, ?HANDLER_ERRORS),
              inflight => atomics:get(Ref, ?INFLIGHT),
              bufferedBytes => St#st.bytes, unackedSent => queue:len(St#st.sent),
              pending => queue:len(St#st.pending), acked => St#st.acked,
              connected => St#st.connected, handler => St#st.handler,
              alarms => is_pid(St#st.alarm)}, St};
handle_call({notify_watched, Event}, _From, St0) ->
    St1 = add(stamp(Event), St0),
    Seq = atomics:get(St1#st.seq, 1),
    Watched = maps:put(Seq, pending, bound_watched(St1#st.watched)),
    {reply, {ok, Seq}, St1#st{watched = Watched}};
handle_call({delivery, Seq}, _From, #st{watched = Watched} = St) ->
    case maps:find(Seq, Watched) of
        {ok, pending} when Seq =< St#st.acked -> {reply, acked, St#st{watched = maps:remove(Seq, Watched)}};
        {ok, pending} -> {reply, pending, St};
        {ok, lost} -> {reply, lost, St#st{watched = maps:remove(Seq, Watched)}};
        error -> {reply, lost, St}
    end;
handle_call(_Request, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc gen_server callback.
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast({connected, LastSeq, Session}, St0) ->
    St1 = rewind(drop_upto(LastSeq, St0#st{connected = true, session = Session, budget = ?BATCH})),
    {noreply, pump(St1#st{last_progress = beamdeck_agent_terms:monotonic_ms()})};
handle_cast({ack, Seq}, St) ->
    {noreply, drop_upto(Seq, St)};
handle_cast({notify, Event}, St) ->
    {noreply, add(stamp(Event), St)};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @doc gen_server callback.
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({?EVENT_MSG, Event}, #st{sink = {_, Ref, _}} = St) ->
    atomics:sub(Ref, ?INFLIGHT, 1),
    {noreply, add(Event, St)};
handle_info(pump, St) ->
    {noreply, pump(St#st{pump = false})};
handle_info(tick, St) ->
    _ = erlang:send_after(?TICK_MS, self(), tick),
    {noreply, tick(St)};
handle_info({'EXIT', Pid, _Reason}, #st{alarm = Pid} = St) ->
    {noreply, St#st{alarm = undefined, alarm_retry_at = beamdeck_agent_terms:monotonic_ms() + ?ALARM_RETRY_MS}};
handle_info(_Info, St) ->
    {noreply, St}.

%% @doc gen_server callback: take the handlers out of the host's logger and
%% alarm_handler.
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, St) ->
    _ = beamdeck_agent_otp:call(fun() ->
                                        _ = logger:remove_primary_filter(?HANDLER_ID),
                                        logger:remove_handler(?HANDLER_ID)
                                end, ?LOGGER_TIMEOUT),
    case St#st.alarm of
        Pid when is_pid(Pid) -> unlink(Pid), exit(Pid, shutdown), ok;
        undefined -> ok
    end.

%%% INTERNALS %%%

%% Checked against the one schema (beamdeck_agent_config), defaults there.
setting(Key) -> beamdeck_agent_config:get(Key).


%% One counter per boot id, kept across restarts of this process.
seq_counter(BootId) ->
    case persistent_term:get(?SEQ_KEY, undefined) of
        {BootId, Ref} ->
            Ref;
        _ ->
            Ref = atomics:new(1, [{signed, false}]),
            persistent_term:put(?SEQ_KEY, {BootId, Ref}),
            Ref
    end.

%% Put the handler and the primary filter back if someone removed or
%% replaced them, or put a primary filter in front of ours (Elixir's Logger
%% started or restarted after the agent: its translator must not run first).
%% Checked every tick; reading logger's config is an ETS lookup, not a call.
check_handler(#st{sink = Sink} = St) ->
    Handler = case logger:get_handler_config(?HANDLER_ID) of
                  {ok, #{config := #{sink := Sink}}} -> true;
                  _ -> false
              end,
    First = case logger:get_primary_config() of
                #{filters := [{?HANDLER_ID, {_, #{sink := Sink}}} | _]} -> true;
                _ -> false
            end,
    case Handler andalso First of
        true -> St#st{handler = true};
        false -> install_handler(St)
    end.

%% Replace any handler or filter left by an earlier incarnation of this
%% process; logger puts a new primary filter first.
install_handler(#st{sink = Sink} = St) ->
    Progress = setting(progress_reports) =:= true,
    Config = beamdeck_agent_logger_h:handler_config(Sink, Progress),
    Filter = beamdeck_agent_logger_h:filter_config(Sink, Progress),
    Install = fun() ->
                  _ = logger:remove_primary_filter(?HANDLER_ID),
                  _ = logger:remove_handler(?HANDLER_ID),
                  ok = logger:add_handler(?HANDLER_ID, beamdeck_agent_logger_h, Config),
                  logger:add_primary_filter(?HANDLER_ID, Filter)
              end,
    case beamdeck_agent_otp:call(Install, ?LOGGER_TIMEOUT) of
        {ok, ok} ->
            St#st{handler = true, handler_warned = false};
        Error when not St#st.handler_warned ->
            logger:warning("beamdeck_agent: logger handler not installed: ~0p", [Error]),
            St#st{handler = false, handler_warned = true};
        _Error ->
            St#st{handler = false}
    end.

start_alarm(St) ->
    case beamdeck_agent_alarm_h:start_link(St#st.sink) of
        {ok, Pid} -> St#st{alarm = Pid};
        ignore -> St#st{alarm = undefined, alarm_retry_at = beamdeck_agent_terms:monotonic_ms() + ?ALARM_RETRY_MS}
    end.

tick(St0) ->
    St1 = report_drops(check_handler(St0#st{budget = ?BATCH})),
    Now = beamdeck_agent_terms:monotonic_ms(),
    St2 = case St1#st.alarm =:= undefined andalso Now >= St1#st.alarm_retry_at of
              true -> start_alarm(St1);
              false -> St1
          end,
    Stale = St2#st.connected andalso not queue:is_empty(St2#st.sent)
        andalso Now - St2#st.last_progress >= St2#st.resend_ms,
    case Stale of
        true -> pump(rewind(St2#st{last_progress = Now}));
        false -> St2
    end.

%% Coalesced: one `agent` event when the drop counters changed since the last.
report_drops(#st{sink = {_, Ref, _}, reported = Reported} = St0) ->
    case {St0#st.dropped, atomics:get(Ref, ?OVERLOAD)} of
        Reported ->
            St0;
        _ ->
            %% Make room first, so the event carries the drop its own
            %% insertion may cause and does not trigger another report.
            St1 = make_room(?ENTRY_OVERHEAD * 4, St0),
            Counts = {St1#st.dropped, atomics:get(Ref, ?OVERLOAD)},
            Event = #{kind => <<"agent">>, at => beamdeck_agent_terms:now_ms(), dropped => element(1, Counts),
                      overloadDrops => element(2, Counts)},
            push(Event, ?ENTRY_OVERHEAD * 4, St1#st{reported = Counts})
    end.


stamp(Event) -> Event#{at => maps:get(at, Event, beamdeck_agent_terms:now_ms())}.

%% The oldest watched seq goes first; its asker reads it as lost and sends again.
bound_watched(W) when map_size(W) >= ?MAX_WATCHED -> maps:remove(lists:min(maps:keys(W)), W);
bound_watched(W) -> W.

add(Event, St) ->
    Size = erlang:external_size(Event) + ?ENTRY_OVERHEAD,
    push(Event, Size, make_room(Size, St)).

%% Assign the seq and buffer; send at once when connected, caught up and
%% within the burst budget, else leave it to the pump.
push(Event, Size, #st{seq = SeqRef, boot_id = BootId} = St) ->
    Seq = atomics:add_get(SeqRef, 1, 1),
    Frame = Event#{type => <<"event">>, seq => Seq, bootId => BootId},
    Entry = {Seq, Size, Frame},
    St1 = St#st{len = St#st.len + 1, bytes = St#st.bytes + Size},
    case St1#st.connected andalso queue:is_empty(St1#st.pending) andalso St1#st.budget > 0 of
        true ->
            ok = send(declare_drops(Frame, St1), St1#st.session),
            St2 = case queue:is_empty(St1#st.sent) of
                      true -> St1#st{last_progress = beamdeck_agent_terms:monotonic_ms()};
                      false -> St1
                  end,
            St2#st{sent = queue:in(Entry, St2#st.sent), budget = St2#st.budget - 1};
        false ->
            schedule_pump(St1#st{pending = queue:in(Entry, St1#st.pending)})
    end.

%% Drop the oldest events until one of `Size` bytes fits.
make_room(Size, #st{len = Len, max_len = MaxLen, bytes = Bytes, max_bytes = MaxBytes} = St)
  when Len > 0, (Len + 1 > MaxLen orelse Bytes + Size > MaxBytes) ->
    make_room(Size, drop_oldest(St));
make_room(_Size, St) ->
    St.

drop_oldest(#st{sent = Sent, pending = Pending} = St) ->
    case queue:out(Sent) of
        {{value, {Seq, Size, _}}, Sent1} ->
            count_drop(Seq, Size, St#st{sent = Sent1});
        {empty, _} ->
            {{value, {Seq, Size, _}}, Pending1} = queue:out(Pending),
            count_drop(Seq, Size, St#st{pending = Pending1})
    end.

count_drop(Seq, Size, #st{watched = W} = St) ->
    St#st{len = St#st.len - 1, bytes = St#st.bytes - Size, dropped = St#st.dropped + 1,
          dropped_upto = max(Seq, St#st.dropped_upto),
          watched = case maps:is_key(Seq, W) of true -> W#{Seq := lost}; false -> W end}.

%% Dropping takes the oldest first, so every seq after the last acked one
%% up to `dropped_upto` is either dropped or was sent before; the frame
%% right after the dropped ones says so (again on each replay of it).
declare_drops(#{seq := Seq} = Frame, #st{acked = Acked, dropped_upto = Upto})
  when Upto > Acked, Seq =:= Upto + 1 ->
    Frame#{droppedSeqs => [Acked + 1, Upto]};
declare_drops(Frame, _St) ->
    Frame.

%% Forget everything up to `Seq` (acknowledged or already stored).
drop_upto(Seq, St0) ->
    {Sent, N1, B1} = drop_upto(Seq, St0#st.sent, 0, 0),
    {Pending, N2, B2} = drop_upto(Seq, St0#st.pending, 0, 0),
    St1 = St0#st{sent = Sent, pending = Pending, len = St0#st.len - N1 - N2,
                 bytes = St0#st.bytes - B1 - B2, acked = max(Seq, St0#st.acked)},
    case N1 > 0 of
        true -> St1#st{last_progress = beamdeck_agent_terms:monotonic_ms()};
        false -> St1
    end.

drop_upto(Seq, Q, N, B) ->
    case queue:peek(Q) of
        {value, {S, Size, _}} when S =< Seq -> drop_upto(Seq, queue:drop(Q), N + 1, B + Size);
        _ -> {Q, N, B}
    end.

%% Everything unacknowledged becomes unsent again (new connection, or acks
%% stopped coming).
rewind(#st{sent = Sent, pending = Pending} = St) ->
    St#st{sent = queue:new(), pending = queue:join(Sent, Pending)}.

schedule_pump(#st{connected = true, pump = false} = St) ->
    _ = erlang:send_after(?PUMP_MS, self(), pump),
    St#st{pump = true};
schedule_pump(St) ->
    St.

%% Send a batch if the conn is connected and its queue has room.
pump(#st{connected = false} = St) ->
    St;
pump(#st{pending = Pending} = St) ->
    case queue:is_empty(Pending) of
        true -> St;
        false -> pump_probe(St)
    end.

pump_probe(St) ->
    case beamdeck_agent_otp:call(fun conn_probe/0, ?PROBE_TIMEOUT) of
        {ok, {true, Queued}} ->
            Room = max(0, min(?BATCH, St#st.high_water - Queued)),
            St1 = send_n(Room, St#st{budget = ?BATCH}),
            case queue:is_empty(St1#st.pending) of
                true -> St1;
                false -> schedule_pump(St1)
            end;
        {error, timeout} ->
            schedule_pump(St);
        _NotConnected ->
            rewind(St#st{connected = false})
    end.

%% Runs in a helper process (beamdeck_agent_otp:call/2): the conn's state.
%% `stats/0` with a `queued` count is optional; without it we trust the
%% conn's own bounded queue.
conn_probe() ->
    Connected = beamdeck_agent_conn:connected() =:= true,
    Queued = try beamdeck_agent_conn:stats() of
                 #{queued := Q} when is_integer(Q) -> Q;
                 _ -> 0
             catch _:_ -> 0
             end,
    {Connected, Queued}.

send_n(0, St) ->
    St;
send_n(N, #st{sent = Sent, pending = Pending} = St) ->
    case queue:out(Pending) of
        {{value, {_, _, Frame} = Entry}, Pending1} ->
            ok = send(declare_drops(Frame, St), St#st.session),
            St1 = case queue:is_empty(Sent) of
                      true -> St#st{last_progress = beamdeck_agent_terms:monotonic_ms()};
                      false -> St
                  end,
            send_n(N - 1, St1#st{sent = queue:in(Entry, Sent), pending = Pending1});
        {empty, _} ->
            St
    end.

%% beamdeck_agent_conn:send/1,2 is a cast; guard against the module missing.
send(Frame, undefined) ->
    try
        _ = beamdeck_agent_conn:send(Frame),
        ok
    catch _:_ -> ok
    end;
send(Frame, Session) ->
    try
        _ = beamdeck_agent_conn:send(Frame, Session),
        ok
    catch _:_ -> ok
    end.
