%%% Tests for beamdeck_agent_conn against a real WebSocket server
%%% (beamdeck_agent_ws_server). Over 400 lines because the cases share that
%%% server's fixture and the conn's logger capture; split, each file would
%%% repeat them.
-module(beamdeck_agent_conn_tests).

-include_lib("eunit/include/eunit.hrl").

-import(beamdeck_test_util, [wait_until/1, wait_until/2]).

%% Request handler used by the tests (the conn's `handler' option).
-export([handle/2]).
%% logger handler capturing the conn's log lines.
-export([log/2]).

-define(CONN, beamdeck_agent_conn).
-define(SRV, beamdeck_agent_ws_server).

%%% TEST REQUEST HANDLER %%%

handle(<<"echo">>, Params) -> {ok, Params};
handle(<<"sleep">>, #{<<"ms">> := Ms}) ->
    try beamdeck_conn_test_watcher ! {worker, self()} catch error:badarg -> ok end,
    timer:sleep(Ms),
    {ok, #{<<"slept">> => Ms}};
handle(<<"crash">>, _) -> error(boom);
handle(<<"tuple">>, _) -> {ok, #{bad => {not_json}}};
handle(<<"garbage">>, _) -> not_a_result;
handle(<<"huge">>, _) -> {ok, #{pad => binary:copy(<<"h">>, 2000000)}};
handle(<<"die">>, _) -> exit(self(), kill);
handle(Method, Params) -> beamdeck_agent_requests:handle(Method, Params).

%%% LOG CAPTURE %%%

log(#{level := Level, msg := Msg}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_binary(S);
               {report, R} -> iolist_to_binary(io_lib:format("~0p", [R]));
               {F, A} -> unicode:characters_to_binary(io_lib:format(F, A))
           end,
    case binary:match(Text, <<"beamdeck agent">>) of
        nomatch -> ok;
        _ -> Pid ! {log, Level, Text}
    end,
    ok.

capture_logs() ->
    _ = logger:remove_handler(?MODULE),
    ok = logger:add_handler(?MODULE, ?MODULE, #{config => #{pid => self()}, level => all}).

stop_capture() ->
    _ = logger:remove_handler(?MODULE),
    ok.

%% The first `N' captured logs, waiting up to 5 s for them (the conn logs
%% from its own process, which a loaded machine may run late); then any
%% more already there, so an extra one still shows.
await_logs(N) -> await_logs(N, [], erlang:monotonic_time(millisecond) + 5000).
await_logs(N, Acc, Deadline) when length(Acc) < N ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive {log, L, T} -> await_logs(N, [{L, T} | Acc], Deadline)
    after Left -> lists:reverse(Acc)
    end;
await_logs(_N, Acc, _Deadline) ->
    lists:reverse(Acc) ++ logs().

logs() -> logs([]).
logs(Acc) ->
    receive {log, L, T} -> logs([{L, T} | Acc])
    after 0 -> lists:reverse(Acc)
    end.

%%% HELPERS %%%

start(Opts) ->
    {ok, Pid} = ?CONN:start_link(maps:merge(#{token => "tok-1", node => <<"test@node">>,
                                              handler => ?MODULE}, Opts)),
    Pid.

stop() ->
    case whereis(?CONN) of
        undefined -> ok;
        Pid ->
            unlink(Pid),
            Ref = monitor(process, Pid),
            exit(Pid, shutdown),
            receive {'DOWN', Ref, process, Pid, _} -> ok after 5000 -> exit(Pid, kill) end
    end.

url(S) -> url(S, "/agent").
url(S, Path) -> "ws://127.0.0.1:" ++ integer_to_list(?SRV:port(S)) ++ Path.

stat(K) -> maps:get(K, ?CONN:stats()).

%% The next message the server got, decoded (optionally of one type).
server_frame(S, Pred) ->
    Ev = ?SRV:await(S, fun(#{<<"ev">> := <<"message">>, <<"text">> := T}) ->
                               {ok, F} = beamdeck_agent_json:decode(T),
                               Pred(F)
                       end),
    {ok, F} = beamdeck_agent_json:decode(maps:get(<<"text">>, Ev)),
    F.

of_type(T) -> fun(#{<<"type">> := Ty}) -> Ty =:= T end.

reply_for(S, Id) ->
    server_frame(S, fun(#{<<"type">> := <<"reply">>, <<"id">> := I}) -> I =:= Id end).

request(S, Id, Method, Params, TimeoutMs) ->
    ?SRV:cmd(S, #{cmd => send, data => iolist_to_binary(beamdeck_agent_json:encode(
                  #{type => request, id => Id, method => Method, params => Params,
                    timeoutMs => TimeoutMs}))}).

connect(S) -> connect(S, #{}).
connect(S, Opts) ->
    ?SRV:clear(S),
    start(maps:merge(#{url => url(S)}, Opts)),
    wait_until(fun ?CONN:connected/0),
    Hello = server_frame(S, of_type(<<"hello">>)),
    Hello.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

%%% PURE PARTS %%%

backoff_test() ->
    ?assertEqual(400, beamdeck_agent_backoff:backoff_delay(500, 0.0)),
    ?assertEqual(500, beamdeck_agent_backoff:backoff_delay(500, 0.5)),
    ?assertEqual(600, beamdeck_agent_backoff:backoff_delay(500, 1.0)),
    ?assertEqual(24000, beamdeck_agent_backoff:backoff_delay(30000, 0.0)),
    ?assertEqual(36000, beamdeck_agent_backoff:backoff_delay(30000, 1.0)),
    Seq = lists:foldl(fun(_, [B | _] = Acc) -> [beamdeck_agent_backoff:next_backoff(B, 30000) | Acc] end,
                      [500], lists:seq(1, 8)),
    ?assertEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000], lists:reverse(Seq)),
    %% Jitter stays within +-20 %.
    Delays = [beamdeck_agent_backoff:backoff_delay(1000, rand:uniform()) || _ <- lists:seq(1, 1000)],
    ?assert(lists:min(Delays) >= 800),
    ?assert(lists:max(Delays) =< 1200),
    ?assert(lists:max(Delays) - lists:min(Delays) > 200).

enqueue_test() ->
    {Q, Len, Dropped} = lists:foldl(fun(I, {Q0, L0, D0}) ->
                                            {Q1, L1, D1} = beamdeck_agent_outbox:enqueue(I, {Q0, L0}, 3),
                                            {Q1, L1, D0 + D1}
                                    end, {queue:new(), 0, 0}, lists:seq(1, 5)),
    ?assertEqual(3, Len),
    ?assertEqual(2, Dropped),
    ?assertEqual([3, 4, 5], queue:to_list(Q)).

hello_test() ->
    H = beamdeck_agent_hello:hello(#{node => <<"n@h">>}),
    ?assertEqual(hello, maps:get(type, H)),
    ?assertEqual(1, maps:get(protocol, H)),
    ?assertEqual(<<"n@h">>, maps:get(node, H)),
    ?assertEqual(beamdeck_agent_config:boot_id(), maps:get(bootId, H)),
    ?assertEqual(list_to_binary(erlang:system_info(otp_release)), maps:get(otpRelease, H)),
    ?assertEqual(list_to_binary(erlang:system_info(version)), maps:get(ertsVersion, H)),
    ?assertMatch(<<"Erlang/OTP ", _/binary>>, maps:get(systemVersion, H)),
    ?assertEqual(erlang:is_alive(), maps:get(distributed, H)),
    Now = erlang:system_time(millisecond),
    ?assert(maps:get(startedAt, H) =< Now),
    ?assert(maps:get(startedAt, H) > Now - 86400000 * 365),
    ?assert(maps:get(processCount, H) > 10),
    ?assertEqual(erlang:system_info(process_limit), maps:get(processLimit, H)),
    ?assertEqual(erlang:system_info(schedulers), maps:get(schedulers, H)),
    Apps = maps:get(applications, H),
    ?assert(lists:any(fun(#{name := N, vsn := V}) -> N =:= kernel andalso is_binary(V) end, Apps)),
    case whereis(release_handler) of
        undefined -> ?assertEqual(null, maps:get(releases, H));
        _ -> ?assert(is_list(maps:get(releases, H)))
    end,
    ?assert(is_list(maps:get(capabilities, H))),
    ?assertEqual(#{getState => false}, maps:get(config, H)),
    ?assertEqual(0, maps:get(lastEventSeq, H)),
    %% It is JSON.
    {ok, _} = beamdeck_agent_json:decode(iolist_to_binary(beamdeck_agent_json:encode(H))).

hello_with_release_handler_test() ->
    %% A fake release_handler answering which_releases the way SASL does.
    Fake = spawn(fun Loop() ->
                         receive
                             {'$gen_call', From, which_releases} ->
                                 gen:reply(From, [{"rel_test", "0.1.0", ["kernel-8.5.3", "rel_test-0.1.0"],
                                                   permanent}]),
                                 Loop();
                             stop -> ok
                         end
                 end),
    case try register(release_handler, Fake) catch error:badarg -> taken end of
        true ->
            try
                H = beamdeck_agent_hello:hello(#{node => <<"n@h">>}),
                ?assertEqual([#{name => <<"rel_test">>, vsn => <<"0.1.0">>, status => permanent,
                                apps => [<<"kernel-8.5.3">>, <<"rel_test-0.1.0">>]}],
                             maps:get(releases, H)),
                %% No group setting: the group is the release's name.
                ?assertEqual(<<"rel_test">>, maps:get(group, H))
            after
                unregister(release_handler),
                Fake ! stop
            end;
        _ ->
            Fake ! stop  % SASL's real release_handler runs here: covered by hello_test
    end.

hello_group_setting_test() ->
    application:set_env(beamdeck_agent, group, <<"shop">>),
    try
        ?assertEqual(<<"shop">>, maps:get(group, beamdeck_agent_hello:hello(#{node => <<"n@h">>})))
    after
        application:unset_env(beamdeck_agent, group)
    end,
    %% Neither a setting nor a release: no group (the server files it under none).
    case whereis(release_handler) of
        undefined -> ?assertNot(maps:is_key(group, beamdeck_agent_hello:hello(#{node => <<"n@h">>})));
        _ -> ?assert(is_binary(maps:get(group, beamdeck_agent_hello:hello(#{node => <<"n@h">>}), <<>>)))
    end.

%%% IDLE %%%

idle_without_url_test() ->
    capture_logs(),
    try
        start(#{url => undefined}),
        ?assertEqual(idle, stat(state)),
        ?assertNot(?CONN:connected()),
        [?CONN:send(#{type => procs, n => N}) || N <- lists:seq(1, 100)],
        ?assertEqual(100, stat(dropped)),
        ?assertEqual(0, stat(sent)),
        ?assertMatch([{notice, _}], await_logs(1))
    after
        stop(), stop_capture()
    end.

idle_with_bad_url_test() ->
    capture_logs(),
    try
        start(#{url => "localhost:4000"}),
        ?assertEqual(idle, stat(state)),
        [{error, Text}] = await_logs(1),
        ?assertMatch({_, _}, binary:match(Text, <<"localhost:4000">>))
    after
        stop(), stop_capture()
    end.

not_running_test() ->
    stop(),
    ?assertNot(?CONN:connected()),
    ?assertEqual(ok, ?CONN:send(#{type => procs})),
    ?assertMatch(#{state := not_running, dropped := 0}, ?CONN:stats()).

%%% LIVE %%%

live_test_() ->
    {setup,
     fun() -> ?SRV:start() end,
     fun(S) -> stop(), ?SRV:stop(S) end,
     fun(S) ->
             [{timeout, 60, {Name, fun() -> try F(S) after stop() end end}} ||
                 {Name, F} <- [{"hello, headers, welcome", fun hello_live/1},
                               {"frames reach the server", fun frames_out/1},
                               {"requests: reply with the same id", fun requests/1},
                               {"requests: timeout kills the worker", fun request_timeout/1},
                               {"requests: more than 8 at once get busy", fun request_busy/1},
                               {"bad frames from the server are ignored", fun bad_frames/1},
                               {"keepalive pings", fun keepalive/1},
                               {"server close 1000 reconnects quickly", fun close_normal/1},
                               {"close 4401: log once, back off to max", fun close_4401/1},
                               {"no welcome in time", fun welcome_timeout/1},
                               {"stuck server: bounded, then send timeout", fun stuck_server/1}]]
     end}.

hello_live(S) ->
    Hello = connect(S),
    #{<<"headers">> := H} = ?SRV:await(S, fun(#{<<"ev">> := E}) -> E =:= <<"connection">> end),
    ?assertEqual(<<"Bearer tok-1">>, maps:get(<<"authorization">>, H)),
    ?assertEqual(<<"test@node">>, maps:get(<<"x-beamdeck-node">>, H)),
    ?assertMatch(#{<<"type">> := <<"hello">>, <<"protocol">> := 1, <<"node">> := <<"test@node">>,
                   <<"lastEventSeq">> := 0, <<"config">> := #{<<"getState">> := false}}, Hello),
    ?assertEqual(beamdeck_agent_config:boot_id(), maps:get(<<"bootId">>, Hello)),
    [?assert(maps:is_key(K, Hello), K)
     || K <- [<<"agentVersion">>, <<"otpRelease">>, <<"ertsVersion">>, <<"systemVersion">>,
              <<"distributed">>, <<"startedAt">>, <<"processCount">>, <<"processLimit">>,
              <<"schedulers">>, <<"applications">>, <<"releases">>, <<"capabilities">>]],
    ?assertMatch(#{state := connected, connected := true, attempts := 1, reconnects := 0,
                   lastError := null}, ?CONN:stats()).

frames_out(S) ->
    connect(S),
    ok = ?CONN:send(#{type => procs, seq => 1, upsert => [], big => 123456789012345678901}),
    F = server_frame(S, of_type(<<"procs">>)),
    ?assertEqual(#{<<"type">> => <<"procs">>, <<"seq">> => 1, <<"upsert">> => [],
                   <<"big">> => <<"123456789012345678901">>}, F),
    %% 600 KB: over the fragment size, under the frame cap.
    Big = binary:copy(<<"z">>, 600000),
    ok = ?CONN:send(#{type => tree, pad => Big}),
    #{<<"size">> := Size} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"size">> := N}) ->
                                                  E =:= <<"message">> andalso N > 600000
                                          end),
    ?assert(Size > 600000),
    %% Over the frame cap: dropped and counted, not sent; the socket stays up.
    Dropped0 = stat(dropped),
    ok = ?CONN:send(#{type => tree, pad => binary:copy(<<"z">>, 1100000)}),
    %% An unencodable frame: dropped too.
    ok = ?CONN:send(#{type => procs, bad => {tuple}}),
    ok = ?CONN:send(#{type => procs, seq => 2}),
    #{<<"seq">> := 2} = server_frame(S, of_type(<<"procs">>)),
    ?assertEqual(Dropped0 + 2, stat(dropped)),
    ?assert(?CONN:connected()),
    ?assert(stat(sent) >= 3).

requests(S) ->
    connect(S),
    request(S, <<"r-1">>, <<"echo">>, #{<<"x">> => 1}, 5000),
    ?assertEqual(#{<<"type">> => <<"reply">>, <<"id">> => <<"r-1">>, <<"ok">> => true,
                   <<"result">> => #{<<"x">> => 1}}, reply_for(S, <<"r-1">>)),
    request(S, <<"r-2">>, <<"refresh">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := true, <<"result">> := #{}}, reply_for(S, <<"r-2">>)),
    request(S, <<"r-3">>, <<"no_such_method">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"unknown_method">>,
                                                         <<"message">> := <<"unknown method: no_such_method">>}},
                 reply_for(S, <<"r-3">>)),
    request(S, <<"r-4">>, <<"crash">>, #{}, 5000),
    #{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"internal">>, <<"message">> := M4}} =
        reply_for(S, <<"r-4">>),
    ?assertMatch({_, _}, binary:match(M4, <<"boom">>)),
    request(S, <<"r-5">>, <<"tuple">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"internal">>}}, reply_for(S, <<"r-5">>)),
    request(S, <<"r-6">>, <<"garbage">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"internal">>}}, reply_for(S, <<"r-6">>)),
    request(S, <<"r-8">>, <<"huge">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"too_large">>}}, reply_for(S, <<"r-8">>)),
    request(S, <<"r-9">>, <<"die">>, #{}, 5000),
    #{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"internal">>, <<"message">> := M9}} =
        reply_for(S, <<"r-9">>),
    ?assertMatch({_, _}, binary:match(M9, <<"killed">>)),
    request(S, <<"r-7">>, <<"process_detail">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"bad_request">>}}, reply_for(S, <<"r-7">>)),
    %% Numeric ids are echoed as they came.
    request(S, 42, <<"echo">>, #{}, 5000),
    ?assertMatch(#{<<"ok">> := true}, reply_for(S, 42)),
    ?assert(?CONN:connected()).

request_timeout(S) ->
    connect(S),
    register(beamdeck_conn_test_watcher, self()),
    try
        T0 = erlang:monotonic_time(millisecond),
        request(S, <<"slow">>, <<"sleep">>, #{<<"ms">> => 10000}, 300),
        Worker = receive {worker, W} -> W after 5000 -> error(no_worker) end,
        R = reply_for(S, <<"slow">>),
        Took = erlang:monotonic_time(millisecond) - T0,
        ?assertMatch(#{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"timeout">>}}, R),
        ?assert(Took >= 300),
        ?assert(Took < 3000),
        %% The worker was killed, not left sleeping.
        ?assertNot(is_process_alive(Worker))
    after
        unregister(beamdeck_conn_test_watcher)
    end.

request_busy(S) ->
    connect(S),
    Ids = [iolist_to_binary(["b-", integer_to_list(N)]) || N <- lists:seq(1, 9)],
    [request(S, Id, <<"sleep">>, #{<<"ms">> => 500}, 5000) || Id <- Ids],
    Replies = [reply_for(S, Id) || Id <- Ids],
    Busy = [R || #{<<"ok">> := false, <<"error">> := #{<<"code">> := <<"busy">>}} = R <- Replies],
    Ok = [R || #{<<"ok">> := true} = R <- Replies],
    ?assertEqual(1, length(Busy)),
    ?assertEqual(8, length(Ok)),
    ?assertMatch(#{<<"id">> := <<"b-9">>}, hd(Busy)).

bad_frames(S) ->
    capture_logs(),
    try
        connect(S),
        ?SRV:cmd(S, #{cmd => send, data => <<"this is not json">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"{\"type\":\"mystery\"}">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"[1,2]">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"{\"type\":\"welcome\"}">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"{\"type\":\"request\"}">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"{\"type\":\"ack\",\"eventSeq\":-1}">>}),
        ?SRV:cmd(S, #{cmd => send, data => <<"this is not json either">>}),
        request(S, <<"after">>, <<"echo">>, #{}, 5000),
        ?assertMatch(#{<<"ok">> := true}, reply_for(S, <<"after">>)),
        ?assert(?CONN:connected()),
        ?assertEqual(1, stat(attempts)),
        Warnings = [T || {warning, T} <- logs()],
        %% Logged, once per kind: two non-JSON frames gave one line.
        ?assertEqual(1, length([T || T <- Warnings, binary:match(T, <<"not JSON">>) =/= nomatch])),
        ?assert(lists:any(fun(T) -> binary:match(T, <<"mystery">>) =/= nomatch end, Warnings))
    after
        stop_capture()
    end.

keepalive(S) ->
    connect(S, #{keepalive_ms => 100}),
    #{<<"data">> := <<"beamdeck">>} = ?SRV:await(S, fun(#{<<"ev">> := E}) -> E =:= <<"ping">> end, 2000),
    %% The server answers pings, so the socket stays up past 3 periods.
    timer:sleep(500),
    ?assert(?CONN:connected()),
    ?assertEqual(1, stat(attempts)).

close_normal(S) ->
    connect(S),
    ?SRV:cmd(S, #{cmd => close, code => 1000, reason => <<"bye">>}),
    wait_until(fun() -> stat(reconnects) =:= 1 end, 3000),
    ?assert(?CONN:connected()),
    ?assertEqual(2, stat(attempts)),
    %% A second hello on the new socket, same boot id.
    #{<<"bootId">> := Boot} = server_frame(S, of_type(<<"hello">>)),
    ?assertEqual(beamdeck_agent_config:boot_id(), Boot).

close_4401(S) ->
    capture_logs(),
    try
        %% A short maximum so that several retries happen during the test.
        connect(S, #{backoff_max => 300}),
        ?SRV:cmd(S, #{cmd => close, code => 4401, reason => <<"token revoked">>}),
        %% Each reconnect gets 4401 again.
        RevokeLoop = spawn_link(fun() -> revoke_loop(S) end),
        %% Read while the loop still refuses: a session that opens between
        %% two refusals clears lastError.
        wait_until(fun() -> stat(attempts) >= 4 andalso refused_4401(stat(lastError)) end, 15000),
        unlink(RevokeLoop),
        exit(RevokeLoop, kill),
        ?assertEqual(300, stat(backoffMs)),
        Lines = [T || {warning, T} <- logs(), binary:match(T, <<"4401">>) =/= nomatch],
        ?assertEqual(1, length(Lines)),
        ?assertMatch({_, _}, binary:match(hd(Lines), <<"token revoked">>))
    after
        stop_capture()
    end.

refused_4401(Error) -> is_binary(Error) andalso binary:match(Error, <<"4401">>) =/= nomatch.

revoke_loop(S) ->
    ?SRV:await(S, fun(#{<<"ev">> := E, <<"text">> := T}) ->
                          E =:= <<"message">> andalso binary:match(T, <<"hello">>) =/= nomatch
                  end, 10000),
    ?SRV:cmd(S, #{cmd => close, code => 4401, reason => <<"token revoked">>}),
    revoke_loop(S).

welcome_timeout(S) ->
    ?SRV:clear(S),
    start(#{url => url(S, "/silent"), welcome_timeout => 300}),
    #{<<"id">> := Id} = ?SRV:await(S, fun(#{<<"ev">> := E}) -> E =:= <<"connection">> end),
    ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) -> E =:= <<"close">> andalso I =:= Id end, 3000),
    ?assertNot(?CONN:connected()),
    %% The socket is closed before the conn records why: wait for the record.
    wait_until(fun() -> stat(lastError) =:= <<"welcome_timeout">> end, 3000),
    ?assertMatch(#{state := connecting, lastError := <<"welcome_timeout">>}, ?CONN:stats()).

stuck_server(S) ->
    connect(S, #{max_queue => 10, send_timeout => 1500}),
    ?SRV:cmd(S, #{cmd => pause}),
    #{<<"cmd">> := <<"pause">>} = ?SRV:await(S, fun(#{<<"ev">> := E}) -> E =:= <<"done">> end),
    Conn = whereis(?CONN),
    Pad = binary:copy(<<"p">>, 200000),
    %% Frames of 200 KB against a server that reads nothing, until the
    %% blocked write gives up (send timeout) and the conn drops the socket.
    Deadline = erlang:monotonic_time(millisecond) + 10000,
    {MaxMailbox, MaxMem, N} = flood(Conn, Pad, Deadline, {0, 0, 0}),
    ?assert(MaxMailbox =< 12),
    ?assert(MaxMem < 50000000),
    ?assert(stat(dropped) > N div 2),
    ?assertMatch({_, _}, binary:match(stat(lastError), <<"timeout">>)),
    ?SRV:cmd(S, #{cmd => resume}),
    wait_until(fun() -> stat(reconnects) >= 1 andalso ?CONN:connected() end, 15000).

flood(Conn, Pad, Deadline, {MaxQ, MaxMem, N}) ->
    Now = erlang:monotonic_time(millisecond),
    case stat(lastError) =/= null orelse Now > Deadline of
        true -> {MaxQ, MaxMem, N};
        false ->
            ok = ?CONN:send(#{type => procs, n => N, pad => Pad}),
            {message_queue_len, Q} = erlang:process_info(Conn, message_queue_len),
            {memory, M} = erlang:process_info(Conn, memory),
            flood(Conn, Pad, Deadline, {max(MaxQ, Q), max(MaxMem, M), N + 1})
    end.

%%% SEVERAL ENDPOINTS %%%

endpoints_test_() ->
    {timeout, 60, fun endpoints/0}.

%% `ws://a,ws://b': a dead first endpoint is skipped; when the live one goes
%% away, the agent moves on to the other (in order, then round).
endpoints() ->
    Dead = free_port(),
    B = ?SRV:start(),
    Url = fun(Port) -> "ws://127.0.0.1:" ++ integer_to_list(Port) ++ "/agent" end,
    try
        start(#{url => Url(Dead) ++ "," ++ Url(?SRV:port(B)), backoff_min => 100, backoff_max => 400}),
        beamdeck_test_util:wait_until(fun ?CONN:connected/0, 15000),
        ?assert(stat(attempts) >= 2),
        #{<<"text">> := Hello} = ?SRV:await(B, fun(#{<<"ev">> := E}) -> E =:= <<"message">> end),
        ?assertMatch({ok, #{<<"type">> := <<"hello">>}}, beamdeck_agent_json:decode(Hello)),
        %% B goes away; A comes up on the port that was dead: the agent follows.
        ?SRV:stop(B),
        beamdeck_test_util:wait_until(fun() -> not ?CONN:connected() end),
        A = ?SRV:start(["--port", integer_to_list(Dead)]),
        try
            beamdeck_test_util:wait_until(fun ?CONN:connected/0, 15000),
            #{<<"text">> := Again} = ?SRV:await(A, fun(#{<<"ev">> := E}) -> E =:= <<"message">> end),
            ?assertMatch({ok, #{<<"type">> := <<"hello">>}}, beamdeck_agent_json:decode(Again))
        after
            ?SRV:stop(A)
        end
    after
        stop()
    end.

%%% SERVER DOWN AND BACK %%%

restart_test_() ->
    {timeout, 60, fun restart/0}.

restart() ->
    Port = free_port(),
    S1 = ?SRV:start(["--port", integer_to_list(Port)]),
    try
        start(#{url => "ws://127.0.0.1:" ++ integer_to_list(Port) ++ "/agent"}),
        wait_until(fun ?CONN:connected/0),
        ?SRV:stop(S1),
        wait_until(fun() -> not ?CONN:connected() end),
        %% While the server is down: dropped, counted, and retried with backoff.
        [?CONN:send(#{type => procs, n => N}) || N <- lists:seq(1, 5000)],
        ?assert(stat(dropped) >= 5000),
        T0 = erlang:monotonic_time(millisecond),
        timer:sleep(2500),
        %% 500 + 1000 ms (+-20 %) fit in 2.5 s, a third retry (at ~3.5 s) does not.
        Attempts = stat(attempts),
        ?assert(Attempts >= 3),
        ?assert(Attempts =< 4),
        ?assertEqual(connecting, stat(state)),
        {memory, Mem} = erlang:process_info(whereis(?CONN), memory),
        ?assert(Mem < 1000000),
        {message_queue_len, 0} = erlang:process_info(whereis(?CONN), message_queue_len),
        S2 = ?SRV:start(["--port", integer_to_list(Port)]),
        try
            %% Back within the backoff in effect (at most 1.2x the next base),
            %% counted from when the server is back: starting it may take
            %% seconds on a loaded machine.
            BackAt = erlang:monotonic_time(millisecond),
            Base = stat(backoffMs),
            wait_until(fun ?CONN:connected/0, 20000),
            Took = erlang:monotonic_time(millisecond) - BackAt,
            ?assert(Took < Base * 12 div 10 + 2000),
            ?assert(BackAt - T0 >= 2500),
            ?assertEqual(1, stat(reconnects)),
            #{<<"text">> := Hello} = ?SRV:await(S2, fun(#{<<"ev">> := E}) -> E =:= <<"message">> end),
            {ok, #{<<"type">> := <<"hello">>}} = beamdeck_agent_json:decode(Hello),
            %% A frame sent for the first connection is discarded on the second,
            %% not counted as dropped (the events process replays it in order).
            Dropped = stat(dropped),
            ok = ?CONN:send(#{type => procs, n => stale}, 1),
            ok = ?CONN:send(#{type => procs, n => back}),
            #{<<"text">> := Back} = ?SRV:await(S2, fun(#{<<"ev">> := E}) -> E =:= <<"message">> end),
            ?assertMatch({ok, #{<<"n">> := <<"back">>}}, beamdeck_agent_json:decode(Back)),
            ok = ?CONN:send(#{type => procs, n => current}, 2),
            #{<<"text">> := Current} = ?SRV:await(S2, fun(#{<<"ev">> := E}) -> E =:= <<"message">> end),
            ?assertMatch({ok, #{<<"n">> := <<"current">>}}, beamdeck_agent_json:decode(Current)),
            ?assertEqual(Dropped, stat(dropped))
        after
            stop(),
            ?SRV:stop(S2)
        end
    after
        stop(),
        try ?SRV:stop(S1) catch _:_ -> ok end
    end.

http_401_test_() ->
    {timeout, 60, fun http_401/0}.

http_401() ->
    S = ?SRV:start(["--token", "good"]),
    capture_logs(),
    try
        start(#{url => url(S), token => "bad", backoff_max => 200}),
        wait_until(fun() -> stat(attempts) >= 4 end, 5000),
        ?assertNot(?CONN:connected()),
        ?assertEqual(200, stat(backoffMs)),
        ?assertMatch({_, _}, binary:match(stat(lastError), <<"401">>)),
        Lines = [T || {warning, T} <- logs(), binary:match(T, <<"401">>) =/= nomatch],
        ?assertEqual(1, length(Lines)),
        ?assertMatch({_, _}, binary:match(hd(Lines), <<"invalid agent token">>)),
        %% With the default maximum a refused token waits ~30 s: one attempt only.
        stop(),
        start(#{url => url(S), token => "bad"}),
        wait_until(fun() -> stat(lastError) =/= null end),
        timer:sleep(1000),
        ?assertEqual(1, stat(attempts)),
        ?assertEqual(30000, stat(backoffMs))
    after
        stop(), stop_capture(), ?SRV:stop(S)
    end.

unreachable_logs_once_test_() ->
    {timeout, 30, fun() ->
        capture_logs(),
        try
            start(#{url => "ws://127.0.0.1:" ++ integer_to_list(free_port()) ++ "/agent",
                    backoff_max => 100, backoff_min => 50}),
            wait_until(fun() -> stat(attempts) >= 10 end, 10000),
            Lines = [T || {_, T} <- logs(), binary:match(T, <<"cannot reach">>) =/= nomatch],
            ?assertEqual(1, length(Lines)),
            ?assertMatch({_, _}, binary:match(hd(Lines), <<"econnrefused">>))
        after
            stop(), stop_capture()
        end
    end}.

%%% REQUESTS MODULE %%%

requests_test() ->
    R = fun beamdeck_agent_requests:handle/2,
    ?assertEqual({error, unknown_method, <<"unknown method: nope">>}, R(<<"nope">>, #{})),
    ?assertEqual({ok, #{}}, R(<<"refresh">>, #{})),
    ?assertMatch({error, bad_request, _}, R(<<"process_detail">>, #{})),
    ?assertMatch({error, bad_request, _}, R(<<"process_detail">>, #{<<"pid">> => 7})),
    ?assertMatch({error, bad_request, _}, R(<<"echo">>, [])),
    ?assertMatch({error, bad_request, _}, R(undefined, #{})),
    %% A long method name is cut in the message.
    {error, unknown_method, Msg} = R(binary:copy(<<"m">>, 1000), #{}),
    ?assert(byte_size(Msg) < 200),
    %% process_detail goes to beamdeck_agent_detail when it is in the build.
    Pid = list_to_binary(pid_to_list(self())),
    case code:ensure_loaded(beamdeck_agent_detail) of
        {module, _} -> ?assertMatch({ok, #{}}, R(<<"process_detail">>, #{<<"pid">> => Pid}));
        _ -> ?assertMatch({error, unavailable, _}, R(<<"process_detail">>, #{<<"pid">> => Pid}))
    end,
    %% Upgrade methods go to beamdeck_agent_upgrade:request/2 only when it exists.
    case code:ensure_loaded(beamdeck_agent_upgrade) =:= {module, beamdeck_agent_upgrade}
         andalso erlang:function_exported(beamdeck_agent_upgrade, request, 2) of
        true -> ok;
        false ->
            [?assertEqual({error, unknown_method, <<"unknown method: ", M/binary>>}, R(M, #{}))
             || M <- [<<"releases">>, <<"upgrade_plan">>, <<"upgrade_command">>, <<"old_code">>]]
    end.

%%% APPLICATION AND SUPERVISOR %%%

app_test_() ->
    {timeout, 60, fun app/0}.

app() ->
    stop(),
    Saved = os:getenv("BEAMDECK_URL"),
    SavedEnv = application:get_env(beamdeck_agent, url),
    os:unsetenv("BEAMDECK_URL"),
    _ = application:stop(beamdeck_agent),
    ok = case application:load(beamdeck_agent) of
             ok -> ok;
             {error, {already_loaded, _}} -> ok
         end,
    application:set_env(beamdeck_agent, url, undefined),
    try
        {ok, _} = application:ensure_all_started(beamdeck_agent),
        Boot1 = beamdeck_agent_config:boot_id(),
        ?assertEqual(idle, stat(state)),
        Children = [Id || {Id, P, _, _} <- lists:reverse(supervisor:which_children(beamdeck_agent_sup)),
                          is_pid(P)],
        ?assertEqual(beamdeck_agent_sup:child_modules(), Children),
        ?assert(lists:member(beamdeck_agent_conn, Children)),
        ok = application:stop(beamdeck_agent),
        ?assertEqual(undefined, whereis(beamdeck_agent_conn)),
        {ok, _} = application:ensure_all_started(beamdeck_agent),
        Boot2 = beamdeck_agent_config:boot_id(),
        ?assertNotEqual(Boot1, Boot2),
        ?assertMatch({match, _}, re:run(Boot2, "^[0-9a-f]{32}$"))
    after
        _ = application:stop(beamdeck_agent),
        case Saved of
            false -> ok;
            _ -> os:putenv("BEAMDECK_URL", Saved)
        end,
        case SavedEnv of
            {ok, V} -> application:set_env(beamdeck_agent, url, V);
            undefined -> application:unset_env(beamdeck_agent, url)
        end
    end.
