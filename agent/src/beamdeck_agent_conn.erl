%%% @doc The agent's connection to the beamdeck server (docs/protocol.md).
%%%
%%% A gen_statem registered as `beamdeck_agent_conn', in one of three states:
%%%
%%% - `idle': no URL (or a malformed one, logged once); nothing happens.
%%% - `connecting': waiting out the backoff, dialing (in a helper process,
%%%   so this process keeps answering), or waiting for `welcome'.
%%% - `connected': `welcome' arrived; frames flow both ways.
%%%
%%% Outbound frames go through a queue bounded by `max_queue' (the oldest is
%%% dropped on overflow and counted). `send/1' is a cast that never blocks:
%%% while not connected it drops and counts in the caller, and casts in
%%% flight are bounded too, so neither the queue nor this process's mailbox
%%% grows while the server is slow or down for hours. Counters and the
%%% connected flag live in a public ETS table owned by this process, so
%%% `connected/0' and `stats/0' never wait on it.
%%%
%%% Server requests run in worker processes (at most 8), each killed when
%%% its `timeoutMs' runs out; every request gets exactly one reply.
%%% Reconnects use jittered exponential backoff (500 ms doubling to 30 s,
%%% +-20 %, reset after a connection that lived 10 s); a refused token
%%% (HTTP 401/403, close 4401/4403) backs off to the maximum at once. Each
%%% distinct failure is logged once, not at every retry.
%%%
%%% Over 400 lines because one gen_statem's event handlers share the `#d'
%%% record (queue, workers, dialer, backoff); split further, each part would
%%% need that record and the state transitions would be read across files.
%%% What is pure lives elsewhere: the reconnect policy in
%%% beamdeck_agent_backoff, the queue's drop rule in beamdeck_agent_outbox, a
%%% request's reply in beamdeck_agent_reply, the hello frame in
%%% beamdeck_agent_hello, the WebSocket in beamdeck_agent_ws*.
-module(beamdeck_agent_conn).

-behaviour(gen_statem).

-export([start_link/0, start_link/1, send/1, send/2, connected/0, stats/0]).
-export([callback_mode/0, init/1, handle_event/4, terminate/3]).

-define(TAB, ?MODULE).
-define(MAX_LOGGED_KEYS, 32).
-define(FLUSH_BATCH, 32).
%% Frames from this size up are swept once sent (sweep/1).
-define(SWEEP_BYTES, 64 * 1024).

-record(d, {opts :: map(),
            endpoint :: undefined | beamdeck_agent_config:endpoint(),
            %% Every endpoint, the current one first; a failure moves to the next.
            endpoints = [] :: [beamdeck_agent_config:endpoint()],
            ws :: undefined | beamdeck_agent_ws:ws(),
            dialer :: undefined | {pid(), reference(), reference()},
            phase = backoff :: backoff | dialing | welcome | open,
            queue = queue:new() :: queue:queue(item()),
            qlen = 0 :: non_neg_integer(),
            flush_pending = false :: boolean(),
            backoff :: pos_integer(),
            connected_at :: undefined | integer(),
            last_recv = 0 :: integer(),
            sessions = 0 :: non_neg_integer(),
            attempts = 0 :: non_neg_integer(),
            last_logged :: term(),
            recovered_logged :: term(),
            workers = #{} :: #{reference() => {pid(), reference(), binary() | integer()}},
            %% A large frame was sent since the last sweep (sweep/1).
            unswept = false :: boolean(),
            logged = [] :: [term()]}).

-type item() :: {frame, map()} | {raw, binary()}.
-type state() :: idle | connecting | connected.
-type opts() :: #{url => string() | binary() | undefined, token => string() | undefined,
                  node => binary(), tls_verify => boolean(), cacertfile => string() | undefined,
                  max_queue => pos_integer(), max_message => pos_integer(),
                  max_frame => pos_integer(), handler => module(),
                  backoff_min => pos_integer(), backoff_max => pos_integer(),
                  stable_ms => non_neg_integer(), dial_timeout => pos_integer(),
                  welcome_timeout => pos_integer(), keepalive_ms => pos_integer(),
                  max_workers => pos_integer()}.
-export_type([opts/0]).

%%% API %%%

%% @doc Start with the application's settings (beamdeck_agent_config).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() -> start_link(#{}).

%% @doc Start with settings overriding the application's (used by tests).
-spec start_link(Opts) -> {ok, pid()} | {error, term()} when Opts :: opts().
start_link(Opts) ->
    %% Frames pass through and leave garbage: an idle connection hands
    %% its heap back (at 10k processes it held 4 MB between ticks).
    gen_statem:start_link({local, ?MODULE}, ?MODULE, Opts, [{hibernate_after, 500}]).

%% @doc Queue a frame for the server. A cast that never blocks: while not
%% connected, or when too many sends are already in flight, the frame is
%% dropped and counted.
-spec send(Frame) -> ok when Frame :: map().
send(Frame) ->
    cast_send({send, Frame}).

%% @doc Like `send/1', for the connection numbered `Session' (the number
%% `beamdeck_agent_events:connected/2' was given) only: on a later
%% connection the frame is discarded, not counted as dropped. The events
%% process replays in order from the server's `lastEventSeq' once told of
%% the new connection; a frame it sent before that must not overtake the
%% replay (the server would record a gap and skip the replayed seqs).
-spec send(Frame, Session) -> ok when Frame :: map(), Session :: pos_integer().
send(Frame, Session) when is_integer(Session) ->
    cast_send({send, Frame, Session}).

cast_send(Cast) ->
    try ets:lookup_element(?TAB, connected, 2) of
        true ->
            Max = ets:lookup_element(?TAB, max_inflight, 2),
            case ets:update_counter(?TAB, inflight, 1) of
                N when N > Max ->
                    _ = ets:update_counter(?TAB, inflight, -1),
                    _ = ets:update_counter(?TAB, dropped, 1),
                    ok;
                _ ->
                    gen_statem:cast(?MODULE, Cast)
            end;
        false ->
            _ = ets:update_counter(?TAB, dropped, 1),
            ok
    catch
        error:badarg -> ok  % the connection process is not running
    end.

%% @doc Whether `welcome' arrived on the current socket.
-spec connected() -> boolean().
connected() ->
    try ets:lookup_element(?TAB, connected, 2)
    catch error:badarg -> false
    end.

%% @doc Counters: `state', `connected', `sent', `dropped', `queued',
%% `reconnects' (sessions after the first), `attempts' (dials), `backoffMs'
%% (the next base delay), `lastError' (text or null).
-spec stats() -> #{atom() => term()}.
stats() ->
    Keys = [state, connected, sent, dropped, queued, reconnects, attempts, backoffMs, lastError],
    try maps:from_list([{K, ets:lookup_element(?TAB, K, 2)} || K <- Keys])
    catch
        error:badarg ->
            #{state => not_running, connected => false, sent => 0, dropped => 0, queued => 0,
              reconnects => 0, attempts => 0, backoffMs => 0, lastError => null}
    end.

%%% gen_statem %%%

%% @private
-spec callback_mode() -> gen_statem:callback_mode_result().
callback_mode() -> handle_event_function.

%% @private
-spec init(Opts) -> gen_statem:init_result(state()) when Opts :: opts().
init(Opts0) ->
    process_flag(trap_exit, true),
    Opts = settings(Opts0),
    _ = ets:new(?TAB, [named_table, public, set, {write_concurrency, true}, {read_concurrency, true}]),
    true = ets:insert(?TAB, [{connected, false}, {sent, 0}, {dropped, 0}, {queued, 0},
                             {inflight, 0}, {max_inflight, maps:get(max_queue, Opts)},
                             {reconnects, 0}, {attempts, 0},
                             {backoffMs, maps:get(backoff_min, Opts)}, {lastError, null}]),
    D = #d{opts = Opts, backoff = maps:get(backoff_min, Opts)},
    Url = case maps:find(url, Opts) of
              {ok, U} when U =:= undefined; U =:= ""; U =:= <<>> -> undefined;
              {ok, U} -> beamdeck_agent_config:parse_urls(U);
              error -> beamdeck_agent_config:urls()
          end,
    case Url of
        undefined ->
            logger:notice("beamdeck agent: no server URL (BEAMDECK_URL or the `url' setting); "
                          "the agent stays idle"),
            {ok, idle, set_state(idle, D)};
        {error, {bad_url, Text, Why}} ->
            logger:error("beamdeck agent: the server URL ~0tp is not usable (~0p); expected "
                         "ws://HOST:PORT/agent, wss://HOST/agent or an http(s)://HOST:PORT base. "
                         "The agent stays idle.", [Text, Why]),
            {ok, idle, set_state(idle, D)};
        {ok, [Endpoint | _] = Endpoints} ->
            {ok, connecting, set_state(connecting, D#d{endpoint = Endpoint, endpoints = Endpoints}),
             [{state_timeout, 0, dial}]}
    end.

%% @private
-spec handle_event(Type, Event, State, Data) -> gen_statem:event_handler_result(state())
    when Type :: gen_statem:event_type(), Event :: term(), State :: state(), Data :: #d{}.

%% Outbound frames.
handle_event(cast, {send, Frame}, State, D) ->
    _ = ets:update_counter(?TAB, inflight, -1),
    case State of
        connected -> {keep_state, enqueue_item({frame, Frame}, D)};
        _ -> count_dropped(1), keep_state_and_data
    end;
handle_event(cast, {send, Frame, Session}, State, #d{sessions = Sessions} = D) ->
    _ = ets:update_counter(?TAB, inflight, -1),
    case State of
        connected when Session =:= Sessions -> {keep_state, enqueue_item({frame, Frame}, D)};
        connected -> keep_state_and_data;  % for an earlier connection: replayed on this one
        _ -> count_dropped(1), keep_state_and_data
    end;
handle_event(info, flush, connected, D) ->
    flush(D#d{flush_pending = false}, ?FLUSH_BATCH);
handle_event(info, flush, _State, D) ->
    {keep_state, D#d{flush_pending = false}};

%% Dialing.
handle_event(state_timeout, dial, connecting, D) ->
    {keep_state, start_dial(D), [{state_timeout, maps:get(dial_timeout, D#d.opts), dial_timeout}]};
handle_event(state_timeout, dial_timeout, connecting, D) ->
    disconnect(dial_timeout, connecting, D);
handle_event(info, {dialed, Ref, Result}, connecting, #d{dialer = {_, Ref, MRef}} = D) ->
    demonitor(MRef, [flush]),
    D1 = D#d{dialer = undefined},
    case Result of
        {ok, Ws} ->
            D2 = D1#d{ws = Ws, phase = welcome, last_recv = beamdeck_agent_terms:monotonic_ms()},
            received(<<>>, connecting, D2,
                     [{state_timeout, maps:get(welcome_timeout, D#d.opts), welcome_timeout},
                      keepalive(D2)]);
        {error, Reason} ->
            disconnect(Reason, connecting, D1)
    end;
handle_event(info, {dialed, _Ref, Result}, _State, _D) ->
    %% A dialer we gave up on: close what it opened.
    _ = case Result of
            {ok, Ws} -> beamdeck_agent_ws:abort(Ws);
            _ -> ok
        end,
    keep_state_and_data;
handle_event(info, {'DOWN', MRef, process, _, Why}, connecting, #d{dialer = {_, _, MRef}} = D) ->
    disconnect({dialer_crashed, Why}, connecting, D#d{dialer = undefined});
handle_event(state_timeout, welcome_timeout, connecting, D) ->
    disconnect(welcome_timeout, connecting, D);

%% Request workers: the reply, then the worker's end.
handle_event(info, {request_reply, Pid, Bin}, _State, #d{workers = W} = D) ->
    case [M || {M, {P, _, _}} <- maps:to_list(W), P =:= Pid] of
        [MRef] ->
            {Pid, TRef, _Id} = maps:get(MRef, W),
            _ = erlang:cancel_timer(TRef),
            demonitor(MRef, [flush]),
            {keep_state, enqueue_reply(Bin, D#d{workers = maps:remove(MRef, W)})};
        [] ->
            keep_state_and_data  % timed out or dropped at a disconnect: already handled
    end;
handle_event(info, {'DOWN', MRef, process, _, Why}, _State, #d{workers = W} = D)
  when is_map_key(MRef, W) ->
    %% Ended without a reply (run_request/5 catches the handler's errors,
    %% so this is a kill from outside): answer anyway.
    {{_Pid, TRef, Id}, W1} = maps:take(MRef, W),
    _ = erlang:cancel_timer(TRef),
    Reply = beamdeck_agent_reply:reply_bin(Id, {error, internal, printed({worker_exit, Why})}),
    {keep_state, enqueue_reply(Reply, D#d{workers = W1})};
handle_event(info, {timeout, _TRef, {request_timeout, MRef}}, _State, #d{workers = W} = D) ->
    case maps:take(MRef, W) of
        {{Pid, _, Id}, W1} ->
            exit(Pid, kill),
            demonitor(MRef, [flush]),
            Reply = beamdeck_agent_reply:reply_bin(Id, {error, timeout, <<"the agent's worker ran out of time">>}),
            {keep_state, enqueue_reply(Reply, D#d{workers = W1})};
        error -> keep_state_and_data
    end;

%% Keepalive: a ping when quiet, a disconnect when silent for 3 periods.
handle_event({timeout, keepalive}, ping, State, #d{ws = Ws} = D) when Ws =/= undefined ->
    Period = maps:get(keepalive_ms, D#d.opts),
    case beamdeck_agent_terms:monotonic_ms() - D#d.last_recv > 3 * Period of
        true -> disconnect(keepalive_timeout, State, D);
        false ->
            case beamdeck_agent_ws:ping(Ws, <<"beamdeck">>) of
                ok -> {keep_state_and_data, [keepalive(D)]};
                {error, R} -> disconnect({send_failed, R}, State, D)
            end
    end;
handle_event({timeout, keepalive}, ping, _State, _D) ->
    keep_state_and_data;

%% Frames from the server, one event each (so a state change by `welcome'
%% applies to the frames after it).
handle_event(internal, {ws_event, Ev}, State, D) ->
    ws_event(Ev, State, D);

%% Exits of linked sockets (trap_exit is on; the parent's exit is handled
%% by gen_statem itself).
handle_event(info, {'EXIT', _Pid, _Reason}, _State, _D) ->
    keep_state_and_data;

%% Socket messages.
handle_event(info, Msg, State, #d{ws = Ws} = D) when Ws =/= undefined ->
    case beamdeck_agent_ws:socket_message(Msg, Ws) of
        {data, Bin} -> received(Bin, State, D#d{last_recv = beamdeck_agent_terms:monotonic_ms()}, []);
        closed -> disconnect({closed, 1006, <<"connection lost">>}, State, D);
        {error, R} -> disconnect({socket_error, R}, State, D);
        other -> keep_state_and_data
    end;
handle_event(info, _Msg, _State, _D) ->
    keep_state_and_data;
handle_event(_Type, _Event, _State, _D) ->
    keep_state_and_data.

%% @private
-spec terminate(Reason, State, Data) -> ok when Reason :: term(), State :: state(), Data :: #d{}.
terminate(_Reason, _State, D) ->
    _ = kill_workers(D),
    _ = case D#d.dialer of
            {Pid, _, _} -> exit(Pid, kill);
            undefined -> ok
        end,
    _ = case D#d.ws of
            undefined -> ok;
            Ws -> beamdeck_agent_ws:close(Ws, 1001, <<"agent stopping">>)
        end,
    ok.

%%% RECEIVING %%%

received(Bin, State, #d{ws = Ws} = D, Actions) ->
    case beamdeck_agent_ws:handle_data(Ws, Bin) of
        {ok, Ws1, Events} ->
            _ = beamdeck_agent_ws:activate(Ws1),
            {keep_state, D#d{ws = Ws1}, Actions ++ [{next_event, internal, {ws_event, E}} || E <- Events]};
        {error, Why, Ws1} ->
            disconnect({protocol_error, Why}, State, D#d{ws = Ws1})
    end.

ws_event({text, Bin}, State, D) ->
    case beamdeck_agent_json:decode(Bin) of
        {ok, #{<<"type">> := Type} = Frame} when is_binary(Type) ->
            frame(Type, Frame, State, D);
        {ok, _} ->
            {keep_state, log_once(no_type, "beamdeck agent: ignoring a server frame without a type", [], D)};
        {error, Why} ->
            {keep_state, log_once(invalid_json, "beamdeck agent: ignoring a server frame "
                                  "that is not JSON: ~0p", [Why], D)}
    end;
ws_event({binary, _}, _State, D) ->
    {keep_state, log_once(binary, "beamdeck agent: ignoring a binary frame from the server", [], D)};
ws_event({close, Code, Reason}, State, D) ->
    disconnect({closed, Code, Reason}, State, D);
ws_event(_PingOrPong, _State, _D) ->
    keep_state_and_data.

frame(<<"welcome">>, Frame, connecting, #d{phase = welcome} = D) ->
    welcomed(Frame, D);
frame(<<"ack">>, #{<<"eventSeq">> := Seq}, connected, _D) when is_integer(Seq), Seq >= 0 ->
    notify(beamdeck_agent_events, ack, [Seq]),
    keep_state_and_data;
frame(<<"request">>, Frame, connected, D) ->
    {keep_state, request(Frame, D)};
frame(Type, _Frame, _State, _D) when Type =:= <<"ping">>; Type =:= <<"pong">> ->
    keep_state_and_data;
frame(Type, _Frame, State, D) ->
    {keep_state, log_once({unexpected, Type, State}, "beamdeck agent: ignoring a `~ts' frame "
                          "from the server (state ~p)", [cap(Type), State], D)}.

welcomed(Frame, D) ->
    LastSeq = case maps:get(<<"lastEventSeq">>, Frame, 0) of
                  N when is_integer(N), N >= 0 -> N;
                  _ -> 0
              end,
    Sessions = D#d.sessions + 1,
    %% After a logged failure, say once that it is over (a flapping link
    %% with one reason gives one line each way).
    Recovered = case D#d.last_logged of
                    undefined ->
                        logger:info("beamdeck agent: connected to ~ts", [endpoint_text(D)]),
                        D#d.recovered_logged;
                    Same when Same =:= D#d.recovered_logged ->
                        Same;
                    Failure ->
                        logger:notice("beamdeck agent: connected to ~ts", [endpoint_text(D)]),
                        Failure
                end,
    true = ets:insert(?TAB, [{reconnects, max(0, Sessions - 1)}, {lastError, null}]),
    D1 = set_state(connected, D#d{phase = open, connected_at = beamdeck_agent_terms:monotonic_ms(), sessions = Sessions,
                                  recovered_logged = Recovered}),
    notify(beamdeck_agent_sampler, resync, []),
    notify(beamdeck_agent_events, connected, [LastSeq, Sessions]),
    notify(beamdeck_agent_upgrade, connected, []),
    {next_state, connected, D1}.

%% Casts to other parts of the agent, each only if its process runs (a
%% partial build may lack it); a failure there must not break the socket.
notify(Name, Fun, Args) ->
    case whereis(Name) of
        undefined -> ok;
        _ ->
            try apply(Name, Fun, Args), ok
            catch Class:Reason ->
                    logger:warning("beamdeck agent: ~p:~p failed: ~0p", [Name, Fun, {Class, Reason}])
            end
    end.

%%% REQUESTS %%%

request(#{<<"id">> := Id} = Frame, D) when is_binary(Id); is_integer(Id) ->
    Method = maps:get(<<"method">>, Frame, undefined),
    Params = case maps:get(<<"params">>, Frame, #{}) of
                 null -> #{};
                 P -> P
             end,
    Timeout = case maps:get(<<"timeoutMs">>, Frame, 5000) of
                  T when is_integer(T) -> min(max(T, 1), 300000);
                  _ -> 5000
              end,
    case map_size(D#d.workers) >= maps:get(max_workers, D#d.opts) of
        true ->
            enqueue_reply(beamdeck_agent_reply:reply_bin(Id, {error, busy, <<"too many requests in progress">>}), D);
        false ->
            Handler = maps:get(handler, D#d.opts),
            MaxFrame = maps:get(max_frame, D#d.opts),
            Self = self(),
            {Pid, MRef} = spawn_monitor(fun() ->
                                                Self ! {request_reply, self(),
                                                        beamdeck_agent_reply:run_request(Handler, Id, Method, Params, MaxFrame)}
                                        end),
            TRef = erlang:start_timer(Timeout, self(), {request_timeout, MRef}),
            D#d{workers = (D#d.workers)#{MRef => {Pid, TRef, Id}}}
    end;
request(_Frame, D) ->
    log_once(request_without_id, "beamdeck agent: ignoring a request without an id", [], D).

kill_workers(#d{workers = W} = D) ->
    maps:foreach(fun(MRef, {Pid, TRef, _Id}) ->
                         exit(Pid, kill),
                         demonitor(MRef, [flush]),
                         erlang:cancel_timer(TRef)
                 end, W),
    D#d{workers = #{}}.

%%% SENDING %%%

enqueue_item(Item, D) ->
    {Q, Len, Dropped} = beamdeck_agent_outbox:enqueue(Item, {D#d.queue, D#d.qlen}, maps:get(max_queue, D#d.opts)),
    count_dropped(Dropped),
    true = ets:insert(?TAB, {queued, Len}),
    schedule_flush(D#d{queue = Q, qlen = Len}).

%% Replies go first: the server is waiting on them with a timeout.
enqueue_reply(Bin, #d{phase = open} = D) ->
    Max = maps:get(max_queue, D#d.opts),
    {Q, Len} = case D#d.qlen >= Max of
                   true ->
                       {{value, _}, Q0} = queue:out_r(D#d.queue),
                       count_dropped(1),
                       {Q0, D#d.qlen - 1};
                   false -> {D#d.queue, D#d.qlen}
               end,
    true = ets:insert(?TAB, {queued, Len + 1}),
    schedule_flush(D#d{queue = queue:in_r({raw, Bin}, Q), qlen = Len + 1});
enqueue_reply(_Bin, D) ->
    count_dropped(1),
    D.

%% The flush message goes to the back of the mailbox, so the casts that
%% arrived meanwhile reach the bounded queue (and its drop rule) first.
schedule_flush(#d{flush_pending = true} = D) -> D;
schedule_flush(D) ->
    self() ! flush,
    D#d{flush_pending = true}.

flush(D, 0) ->
    {keep_state, schedule_flush(D)};
flush(#d{qlen = 0} = D, _N) ->
    true = ets:insert(?TAB, {queued, 0}),
    {keep_state, sweep(D)};
flush(#d{ws = Ws} = D, N) ->
    {{value, Item}, Q} = queue:out(D#d.queue),
    D1 = D#d{queue = Q, qlen = D#d.qlen - 1},
    case encode_item(Item, D1) of
        {ok, Bin, D2} ->
            case beamdeck_agent_ws:send(Ws, text, Bin) of
                ok ->
                    _ = ets:update_counter(?TAB, sent, 1),
                    flush(D2#d{unswept = D2#d.unswept orelse byte_size(Bin) >= ?SWEEP_BYTES},
                          N - 1);
                {error, R} ->
                    count_dropped(1),
                    disconnect({send_failed, R}, connected, D2)
            end;
        {drop, D2} ->
            count_dropped(1),
            flush(D2, N - 1)
    end.

%% Large frames' encodings (iolists, binaries, masked copies) and the frames
%% themselves are garbage once sent, but this process would keep its heap
%% grown for them (and the binaries referenced) until a collection comes:
%% during a reset at 100k processes that was megabytes. Once the queue is
%% empty a full collection gives it back, copying almost nothing (a minor
%% collection after each frame would move the frames still waiting to the
%% old heap, to stay there as garbage).
sweep(#d{unswept = true} = D) ->
    true = erlang:garbage_collect(),
    D#d{unswept = false};
sweep(D) -> D.

encode_item({raw, Bin}, D) -> {ok, Bin, D};
encode_item({frame, Frame}, D) ->
    Max = maps:get(max_frame, D#d.opts),
    try iolist_to_binary(beamdeck_agent_json:encode(Frame)) of
        Bin when byte_size(Bin) > Max ->
            {drop, log_once({too_large, frame_type(Frame)},
                            "beamdeck agent: dropping a `~ts' frame of ~b bytes (limit ~b)",
                            [frame_type(Frame), byte_size(Bin), Max], D)};
        Bin -> {ok, Bin, D}
    catch error:Why ->
            {drop, log_once({unencodable, frame_type(Frame)},
                            "beamdeck agent: dropping a `~ts' frame that is not JSON: ~0tp",
                            [frame_type(Frame), printed(Why)], D)}
    end.

frame_type(#{type := T}) when is_atom(T) -> atom_to_binary(T, utf8);
frame_type(#{<<"type">> := T}) when is_binary(T) -> cap(T);
frame_type(_) -> <<"untyped">>.

count_dropped(0) -> ok;
count_dropped(N) -> _ = ets:update_counter(?TAB, dropped, N), ok.

%%% DIALING AND BACKOFF %%%

start_dial(D) ->
    Self = self(),
    Ref = make_ref(),
    %% The name is read at every dial: a node may become distributed after
    %% the agent started. Header and hello must carry the same one.
    Opts = case maps:find(node, D#d.opts) of
               {ok, _} -> D#d.opts;
               error -> (D#d.opts)#{node => beamdeck_agent_config:node_name()}
           end,
    WsOpts = ws_opts(D#d{opts = Opts}),
    {Pid, MRef} = spawn_monitor(fun() -> dialer(Self, Ref, WsOpts, Opts) end),
    Attempts = D#d.attempts + 1,
    true = ets:insert(?TAB, {attempts, Attempts}),
    D#d{dialer = {Pid, Ref, MRef}, phase = dialing, attempts = Attempts}.

%% Runs in its own process: connect, say hello, hand the socket over.
dialer(Parent, Ref, WsOpts, Opts) ->
    Result = case beamdeck_agent_ws:connect(WsOpts) of
                 {ok, Ws} ->
                     Hello = iolist_to_binary(beamdeck_agent_json:encode(beamdeck_agent_hello:hello(Opts))),
                     case beamdeck_agent_ws:send(Ws, text, Hello) of
                         ok ->
                             case beamdeck_agent_ws:controlling_process(Ws, Parent) of
                                 ok -> {ok, Ws};
                                 {error, R} -> beamdeck_agent_ws:abort(Ws), {error, {handover, R}}
                             end;
                         {error, R} ->
                             beamdeck_agent_ws:abort(Ws),
                             {error, {send_failed, R}}
                     end;
                 {error, _} = Error -> Error
             end,
    Parent ! {dialed, Ref, Result}.

ws_opts(#d{endpoint = #{scheme := Scheme, host := Host, port := Port, path := Path}, opts = O}) ->
    Auth = case maps:get(token, O) of
               undefined -> [];
               Token -> [{"Authorization", ["Bearer ", Token]}]
           end,
    Timeout = maps:get(dial_timeout, O) div 2,
    #{host => Host, port => Port, path => Path, tls => Scheme =:= wss,
      tls_verify => maps:get(tls_verify, O), cacertfile => maps:get(cacertfile, O),
      headers => [{"X-Beamdeck-Node", maps:get(node, O)} | Auth],
      connect_timeout => Timeout, handshake_timeout => Timeout,
      send_timeout => maps:get(send_timeout, O), max_message => maps:get(max_message, O)}.

%% Close the socket, stop the dialer and the workers, log the reason (once
%% per distinct reason) and wait out the backoff in `connecting'.
disconnect(Reason, _State, D0) ->
    D1 = kill_workers(D0),
    _ = case D1#d.ws of
            undefined -> ok;
            Ws -> beamdeck_agent_ws:abort(Ws)
        end,
    _ = case D1#d.dialer of
            {Pid, _, MRef} -> exit(Pid, kill), demonitor(MRef, [flush]);
            undefined -> ok
        end,
    count_dropped(D1#d.qlen),
    Opts = D1#d.opts,
    Lived = case D1#d.connected_at of
                undefined -> 0;
                At -> beamdeck_agent_terms:monotonic_ms() - At
            end,
    Stable = Lived >= maps:get(stable_ms, Opts),
    Base0 = case Stable of
                true -> maps:get(backoff_min, Opts);
                false -> D1#d.backoff
            end,
    Base = case beamdeck_agent_backoff:auth_refused(Reason) of
               true -> maps:get(backoff_max, Opts);
               false -> Base0
           end,
    Delay = beamdeck_agent_backoff:backoff_delay(Base, rand:uniform()),
    Next = beamdeck_agent_backoff:next_backoff(Base, maps:get(backoff_max, Opts)),
    %% A connection that lived long enough ends a run of failures: its
    %% failure is news again even if the reason is the same as before.
    D2 = log_failure(Reason, Delay, case Stable of
                                        true -> D1#d{last_logged = undefined, recovered_logged = undefined};
                                        false -> D1
                                    end),
    true = ets:insert(?TAB, [{backoffMs, Next}, {lastError, printed(Reason)}, {queued, 0}]),
    %% Several endpoints: the next one gets the next dial (then round again).
    {Endpoint, Endpoints} = case D2#d.endpoints of
                                [Cur, NextEp | Rest] -> {NextEp, [NextEp | Rest] ++ [Cur]};
                                Same -> {D2#d.endpoint, Same}
                            end,
    D3 = set_state(connecting, D2#d{ws = undefined, dialer = undefined, phase = backoff,
                                    queue = queue:new(), qlen = 0, backoff = Next,
                                    connected_at = undefined, endpoint = Endpoint,
                                    endpoints = Endpoints}),
    {next_state, connecting, D3, [{state_timeout, Delay, dial}, {{timeout, keepalive}, cancel}]}.

%% One log line per distinct reason: a server down for hours logs once.
log_failure(Reason, Delay, #d{last_logged = Last} = D) ->
    Key = beamdeck_agent_backoff:failure_key(Reason),
    case Key =:= Last of
        true -> D;
        false ->
            Url = endpoint_text(D),
            case Reason of
                {http, Status, Body} when Status =:= 401; Status =:= 403 ->
                    logger:warning("beamdeck agent: ~ts refused the agent token: HTTP ~b ~ts; "
                                   "retrying about every ~ts", [Url, Status, Body, beamdeck_agent_backoff:duration(Delay)]);
                {closed, Code, Why} when Code =:= 4401; Code =:= 4403 ->
                    logger:warning("beamdeck agent: ~ts closed the connection: ~b ~ts; "
                                   "retrying about every ~ts", [Url, Code, Why, beamdeck_agent_backoff:duration(Delay)]);
                {closed, 4400, Why} ->
                    logger:warning("beamdeck agent: ~ts rejected a frame: ~ts; reconnecting",
                                   [Url, Why]);
                {closed, Code, Why} ->
                    logger:notice("beamdeck agent: connection to ~ts closed: ~b ~ts; reconnecting",
                                  [Url, Code, Why]);
                _ ->
                    logger:notice("beamdeck agent: cannot reach ~ts: ~ts; retrying with backoff",
                                  [Url, printed(Reason)])
            end,
            D#d{last_logged = Key}
    end.

keepalive(D) ->
    {{timeout, keepalive}, maps:get(keepalive_ms, D#d.opts), ping}.

%%% HELPERS %%%

settings(Opts) ->
    Defaults = #{token => beamdeck_agent_config:token(),
                 tls_verify => beamdeck_agent_config:tls_verify(),
                 cacertfile => beamdeck_agent_config:get(tls_cacertfile),
                 max_queue => beamdeck_agent_config:get(max_queue),
                 max_message => beamdeck_agent_config:get(max_message),
                 max_frame => beamdeck_agent_config:get(max_frame),
                 handler => beamdeck_agent_requests,
                 backoff_min => 500, backoff_max => 30000, stable_ms => 10000,
                 dial_timeout => 20000, welcome_timeout => 10000, send_timeout => 10000,
                 keepalive_ms => 15000, max_workers => 8},
    maps:merge(Defaults, Opts).

set_state(State, D) ->
    true = ets:insert(?TAB, [{state, State}, {connected, State =:= connected}]),
    D.

log_once(Key, Format, Args, #d{logged = Logged} = D) ->
    case lists:member(Key, Logged) of
        true -> D;
        false ->
            logger:warning(Format, Args),
            D#d{logged = lists:sublist([Key | Logged], ?MAX_LOGGED_KEYS)}
    end.

endpoint_text(#d{endpoint = #{scheme := S, host := H, port := P, path := Path}}) ->
    %% The query is left out: it could carry a secret.
    [Base | _] = string:split(Path, "?"),
    io_lib:format("~s://~s:~b~s", [S, H, P, Base]);
endpoint_text(_) -> "(no url)".


printed(Term) -> beamdeck_agent_terms:text(Term, 500).

cap(Bin) when byte_size(Bin) > 64 -> binary:part(Bin, 0, 64);
cap(Bin) -> Bin.
