%%% Tests for the agent's WebSocket client: the handshake and framing as
%%% pure functions, then against a real server (beamdeck_agent_ws_server).
%%% Over 400 lines because the RFC 6455 cases (handshake, masking, every
%%% frame size class, fragments, close codes) belong to one module's tests.
-module(beamdeck_agent_ws_tests).

-include_lib("eunit/include/eunit.hrl").

-define(WS, beamdeck_agent_ws).
-define(SRV, beamdeck_agent_ws_server).

%%% HANDSHAKE (PURE) %%%

accept_key_rfc_example_test() ->
    %% RFC 6455 section 1.3.
    ?assertEqual(<<"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=">>, beamdeck_agent_ws_handshake:accept_key(<<"dGhlIHNhbXBsZSBub25jZQ==">>)).

new_key_test() ->
    K1 = beamdeck_agent_ws_handshake:new_key(),
    K2 = beamdeck_agent_ws_handshake:new_key(),
    ?assertEqual(24, byte_size(K1)),
    ?assertEqual(16, byte_size(base64:decode(K1))),
    ?assertNotEqual(K1, K2).

host_header_test() ->
    ?assertEqual("example.com", beamdeck_agent_ws_handshake:host_header("example.com", 80, false)),
    ?assertEqual("example.com", beamdeck_agent_ws_handshake:host_header("example.com", 443, true)),
    ?assertEqual("example.com:443", beamdeck_agent_ws_handshake:host_header("example.com", 443, false)),
    ?assertEqual("example.com:80", beamdeck_agent_ws_handshake:host_header("example.com", 80, true)),
    ?assertEqual("127.0.0.1:4000", beamdeck_agent_ws_handshake:host_header("127.0.0.1", 4000, false)),
    ?assertEqual("[::1]:4000", beamdeck_agent_ws_handshake:host_header("::1", 4000, false)).

handshake_request_test() ->
    {ok, Req} = beamdeck_agent_ws_handshake:handshake_request("/agent", <<"a2V5">>,
                                      [{"Host", "h:1"}, {"Authorization", "Bearer t"},
                                       {"X-Beamdeck-Node", <<"n@h">>}]),
    Bin = iolist_to_binary(Req),
    [First | Rest] = binary:split(Bin, <<"\r\n">>, [global]),
    ?assertEqual(<<"GET /agent HTTP/1.1">>, First),
    ?assert(lists:member(<<"Upgrade: websocket">>, Rest)),
    ?assert(lists:member(<<"Connection: Upgrade">>, Rest)),
    ?assert(lists:member(<<"Sec-WebSocket-Key: a2V5">>, Rest)),
    ?assert(lists:member(<<"Sec-WebSocket-Version: 13">>, Rest)),
    ?assert(lists:member(<<"Host: h:1">>, Rest)),
    ?assert(lists:member(<<"Authorization: Bearer t">>, Rest)),
    ?assert(lists:member(<<"X-Beamdeck-Node: n@h">>, Rest)),
    %% Ends with exactly one blank line.
    ?assertMatch(<<_:(byte_size(Bin) - 4)/binary, "\r\n\r\n">>, Bin),
    ?assertEqual(nomatch, binary:match(binary:part(Bin, 0, byte_size(Bin) - 4), <<"\r\n\r\n">>)).

handshake_request_injection_test() ->
    ?assertEqual({error, {bad_header, <<"Authorization">>}},
                 beamdeck_agent_ws_handshake:handshake_request("/agent", <<"k">>, [{"Authorization", "Bearer x\r\nEvil: 1"}])),
    ?assertEqual({error, {bad_header, <<"Path">>}},
                 beamdeck_agent_ws_handshake:handshake_request("/agent\nx", <<"k">>, [])),
    ?assertMatch({error, {bad_header, _}},
                 beamdeck_agent_ws_handshake:handshake_request("/agent", <<"k">>, [{"X\r\n", "v"}])).

parse_response_test() ->
    Resp = <<"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Accept:  abc= \r\n\r\n", 16#81, 0>>,
    ?assertEqual({ok, 101, [{<<"upgrade">>, <<"websocket">>}, {<<"connection">>, <<"Upgrade">>},
                            {<<"sec-websocket-accept">>, <<"abc=">>}], <<16#81, 0>>},
                 beamdeck_agent_ws_handshake:parse_response(Resp)),
    %% Every strict prefix of the head is incomplete.
    HeadLen = byte_size(Resp) - 2,
    [?assertEqual(more, beamdeck_agent_ws_handshake:parse_response(binary:part(Resp, 0, N))) || N <- lists:seq(0, HeadLen - 1)],
    ?assertMatch({ok, 401, [], <<"no">>}, beamdeck_agent_ws_handshake:parse_response(<<"HTTP/1.1 401\r\n\r\nno">>)),
    ?assertMatch({ok, 403, _, <<>>}, beamdeck_agent_ws_handshake:parse_response(<<"HTTP/1.0 403 Forbidden\r\nX: y\r\n\r\n">>)),
    ?assertEqual({error, bad_status_line}, beamdeck_agent_ws_handshake:parse_response(<<"SSH-2.0-OpenSSH\r\n\r\n">>)),
    ?assertEqual({error, bad_status_line}, beamdeck_agent_ws_handshake:parse_response(<<"HTTP/1.1 1O1 x\r\n\r\n">>)),
    ?assertEqual({error, headers_too_large}, beamdeck_agent_ws_handshake:parse_response(binary:copy(<<"a">>, 20000))).

check_upgrade_test() ->
    Key = <<"dGhlIHNhbXBsZSBub25jZQ==">>,
    Good = [{<<"upgrade">>, <<"WebSocket">>}, {<<"connection">>, <<"keep-alive, Upgrade">>},
            {<<"sec-websocket-accept">>, <<"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=">>}],
    ?assertEqual(ok, beamdeck_agent_ws_handshake:check_upgrade(Good, Key)),
    Set = fun(N, V) -> lists:keystore(N, 1, Good, {N, V}) end,
    ?assertEqual({error, {handshake, bad_accept}},
                 beamdeck_agent_ws_handshake:check_upgrade(Set(<<"sec-websocket-accept">>, <<"AAAA">>), Key)),
    ?assertEqual({error, {handshake, bad_accept}}, beamdeck_agent_ws_handshake:check_upgrade(Good, <<"b3RoZXIga2V5">>)),
    ?assertEqual({error, {handshake, missing_accept}},
                 beamdeck_agent_ws_handshake:check_upgrade(lists:keydelete(<<"sec-websocket-accept">>, 1, Good), Key)),
    ?assertEqual({error, {handshake, bad_upgrade}}, beamdeck_agent_ws_handshake:check_upgrade(Set(<<"upgrade">>, <<"h2c">>), Key)),
    ?assertEqual({error, {handshake, bad_upgrade}},
                 beamdeck_agent_ws_handshake:check_upgrade(lists:keydelete(<<"upgrade">>, 1, Good), Key)),
    ?assertEqual({error, {handshake, missing_connection_upgrade}},
                 beamdeck_agent_ws_handshake:check_upgrade(Set(<<"connection">>, <<"keep-alive">>), Key)),
    ?assertEqual({error, {handshake, unexpected_extension}},
                 beamdeck_agent_ws_handshake:check_upgrade([{<<"sec-websocket-extensions">>, <<"permessage-deflate">>} | Good], Key)),
    ?assertEqual({error, {handshake, unexpected_subprotocol}},
                 beamdeck_agent_ws_handshake:check_upgrade([{<<"sec-websocket-protocol">>, <<"chat">>} | Good], Key)).

body_test() ->
    CL = [{<<"content-length">>, <<"14">>}],
    ?assertEqual(more, beamdeck_agent_ws_handshake:body_complete(CL, <<"token rev">>)),
    ?assertEqual({done, <<"token revoked\n">>}, beamdeck_agent_ws_handshake:body_complete(CL, <<"token revoked\nEXTRA">>)),
    ?assertEqual({done, <<>>}, beamdeck_agent_ws_handshake:body_complete([{<<"content-length">>, <<"0">>}], <<>>)),
    Big = [{<<"content-length">>, <<"100000">>}],
    {done, Capped} = beamdeck_agent_ws_handshake:body_complete(Big, binary:copy(<<"a">>, 5000)),
    ?assertEqual(4096, byte_size(Capped)),
    Ch = [{<<"transfer-encoding">>, <<"chunked">>}],
    ?assertEqual(more, beamdeck_agent_ws_handshake:body_complete(Ch, <<"e\r\ntoken">>)),
    ?assertEqual({done, <<"token revoked\nmore">>},
                 beamdeck_agent_ws_handshake:body_complete(Ch, <<"e\r\ntoken revoked\n\r\n4;x=1\r\nmore\r\n0\r\n\r\n">>)),
    ?assertEqual(more, beamdeck_agent_ws_handshake:body_complete([], <<"until close">>)),
    ?assertEqual(<<"token revoked">>, beamdeck_agent_ws_handshake:body_line(<<"\r\n  token revoked  \r\nsecond line\n">>)),
    ?assertEqual(<<>>, beamdeck_agent_ws_handshake:body_line(<<"\n\n">>)),
    ?assertEqual(300, byte_size(beamdeck_agent_ws_handshake:body_line(binary:copy(<<"z">>, 1000)))).

%%% FRAMES (PURE) %%%

enc(Op, P, Fin, Mask) -> iolist_to_binary(beamdeck_agent_ws_frame:encode_frame(Op, P, Fin, Mask)).

rfc_examples_test() ->
    %% RFC 6455 section 5.7.
    ?assertEqual(<<16#81, 16#05, "Hello">>, enc(text, <<"Hello">>, true, none)),
    ?assertEqual(<<16#81, 16#85, 16#37, 16#fa, 16#21, 16#3d, 16#7f, 16#9f, 16#4d, 16#51, 16#58>>,
                 enc(text, <<"Hello">>, true, <<16#37, 16#fa, 16#21, 16#3d>>)),
    ?assertEqual(<<16#01, 16#03, "Hel">>, enc(text, <<"Hel">>, false, none)),
    ?assertEqual(<<16#80, 16#02, "lo">>, enc(continuation, <<"lo">>, true, none)),
    ?assertEqual(<<16#89, 16#05, "Hello">>, enc(ping, <<"Hello">>, true, none)),
    ?assertEqual(<<16#8a, 16#05, "Hello">>, enc(pong, <<"Hello">>, true, none)),
    ?assertMatch(<<16#82, 16#7E, 16#01, 16#00, _:256/binary>>,
                 enc(binary, binary:copy(<<0>>, 256), true, none)),
    ?assertMatch(<<16#82, 16#7F, 0, 0, 0, 0, 0, 1, 0, 0, _:65536/binary>>,
                 enc(binary, binary:copy(<<0>>, 65536), true, none)),
    ?assertEqual({ok, #{fin => true, op => text, payload => <<"Hello">>, masked => true}, <<>>},
                 beamdeck_agent_ws_frame:decode_frame(<<16#81, 16#85, 16#37, 16#fa, 16#21, 16#3d,
                                    16#7f, 16#9f, 16#4d, 16#51, 16#58>>, 1000)).

length_forms_test() ->
    Key = <<1, 2, 3, 4>>,
    Check = fun(Len, HeaderLen) ->
                    P = crypto:strong_rand_bytes(Len),
                    Plain = enc(binary, P, true, none),
                    Masked = enc(binary, P, true, Key),
                    ?assertEqual(HeaderLen + Len, byte_size(Plain)),
                    ?assertEqual(HeaderLen + 4 + Len, byte_size(Masked)),
                    ?assertEqual({ok, #{fin => true, op => binary, payload => P, masked => false}, <<"tail">>},
                                 beamdeck_agent_ws_frame:decode_frame(<<Plain/binary, "tail">>, 1 bsl 20)),
                    ?assertEqual({ok, #{fin => true, op => binary, payload => P, masked => true}, <<>>},
                                 beamdeck_agent_ws_frame:decode_frame(Masked, 1 bsl 20)),
                    %% The masked payload really differs from the plain one.
                    _ = Len >= 4 andalso ?assertNotEqual(P, binary:part(Masked, HeaderLen + 4, Len))
            end,
    [Check(L, 2) || L <- [0, 1, 4, 125]],
    [Check(L, 4) || L <- [126, 127, 1000, 65535]],
    [Check(L, 10) || L <- [65536, 70000, 300000]].

length_boundaries_test() ->
    <<_, 125>> = binary:part(enc(text, binary:copy(<<"a">>, 125), true, none), 0, 2),
    <<_, 126, 126:16>> = binary:part(enc(text, binary:copy(<<"a">>, 126), true, none), 0, 4),
    <<_, 126, 65535:16>> = binary:part(enc(text, binary:copy(<<"a">>, 65535), true, none), 0, 4),
    <<_, 127, 65536:64>> = binary:part(enc(text, binary:copy(<<"a">>, 65536), true, none), 0, 10),
    <<_, 1:1, 127:7, 65536:64, _:4/binary>> = binary:part(enc(text, binary:copy(<<"a">>, 65536), true,
                                                              <<9, 9, 9, 9>>), 0, 14),
    ok.

partial_frames_test() ->
    Frames = [enc(text, <<"hello">>, true, none),
              enc(binary, crypto:strong_rand_bytes(300), true, none),
              enc(binary, crypto:strong_rand_bytes(70000), true, none),
              enc(ping, <<"p">>, true, <<1, 2, 3, 4>>)],
    lists:foreach(
      fun(F) ->
              {ok, _, <<>>} = beamdeck_agent_ws_frame:decode_frame(F, 1 bsl 20),
              Prefixes = lists:usort([0, 1, 2, 3, 4, 5, 9, 10, 11, byte_size(F) - 1]
                                     ++ [rand:uniform(byte_size(F)) - 1 || _ <- lists:seq(1, 20)]),
              [?assertEqual(more, beamdeck_agent_ws_frame:decode_frame(binary:part(F, 0, N), 1 bsl 20))
               || N <- Prefixes, N < byte_size(F), N >= 0]
      end, Frames).

two_frames_in_one_buffer_test() ->
    Buf = iolist_to_binary([enc(text, <<"a">>, true, none), enc(text, <<"bc">>, true, none)]),
    {ok, #{payload := <<"a">>}, Rest} = beamdeck_agent_ws_frame:decode_frame(Buf, 100),
    {ok, #{payload := <<"bc">>}, <<>>} = beamdeck_agent_ws_frame:decode_frame(Rest, 100).

invalid_frames_test() ->
    ?assertEqual({error, {protocol, reserved_bits}}, beamdeck_agent_ws_frame:decode_frame(<<16#C1, 0>>, 100)),
    ?assertEqual({error, {protocol, reserved_bits}}, beamdeck_agent_ws_frame:decode_frame(<<16#91, 0>>, 100)),
    [?assertEqual({error, {protocol, {bad_opcode, Op}}}, beamdeck_agent_ws_frame:decode_frame(<<1:1, 0:3, Op:4, 0>>, 100))
     || Op <- [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]],
    %% Found from the first two bytes, before the rest arrives.
    ?assertEqual({error, {protocol, {bad_opcode, 3}}}, beamdeck_agent_ws_frame:decode_frame(<<16#83, 126>>, 100)),
    ?assertEqual({error, {protocol, fragmented_control}}, beamdeck_agent_ws_frame:decode_frame(<<16#09, 0>>, 100)),
    ?assertEqual({error, {protocol, fragmented_control}}, beamdeck_agent_ws_frame:decode_frame(<<16#08, 0>>, 100)),
    ?assertEqual({error, {protocol, control_too_long}}, beamdeck_agent_ws_frame:decode_frame(<<16#89, 126, 0, 126>>, 1000)),
    ?assertEqual({error, {protocol, bad_length}},
                 beamdeck_agent_ws_frame:decode_frame(<<16#82, 127, 16#80, 0, 0, 0, 0, 0, 0, 1>>, 1000)).

too_big_before_payload_test() ->
    %% The length alone decides: no payload byte has arrived yet.
    ?assertEqual({error, {too_big, 2000}}, beamdeck_agent_ws_frame:decode_frame(<<16#82, 126, 2000:16>>, 1000)),
    ?assertEqual({error, {too_big, 1 bsl 40}}, beamdeck_agent_ws_frame:decode_frame(<<16#82, 127, (1 bsl 40):64>>, 1000)),
    ?assertEqual({error, {too_big, 101}}, beamdeck_agent_ws_frame:decode_frame(<<16#81, 101>>, 100)),
    ?assertEqual(more, beamdeck_agent_ws_frame:decode_frame(<<16#81, 100>>, 100)).

assemble_fragments_with_control_test() ->
    Max = 1000,
    F = fun(Op, Fin, P) -> #{op => Op, fin => Fin, payload => P, masked => false} end,
    {more, A1} = beamdeck_agent_ws_frame:assemble(F(text, false, <<"frag-one|">>), none, Max),
    {control, ping, <<"mid">>, A2} = beamdeck_agent_ws_frame:assemble(F(ping, true, <<"mid">>), A1, Max),
    ?assertEqual(A1, A2),
    {more, A3} = beamdeck_agent_ws_frame:assemble(F(continuation, false, <<"frag-two|">>), A2, Max),
    {control, pong, <<>>, A4} = beamdeck_agent_ws_frame:assemble(F(pong, true, <<>>), A3, Max),
    {control, close, <<3, 232>>, A5} = beamdeck_agent_ws_frame:assemble(F(close, true, <<3, 232>>), A4, Max),
    ?assertEqual({message, text, <<"frag-one|frag-two|frag-three">>, none},
                 beamdeck_agent_ws_frame:assemble(F(continuation, true, <<"frag-three">>), A5, Max)),
    ?assertEqual({message, binary, <<1, 2>>, none}, beamdeck_agent_ws_frame:assemble(F(binary, true, <<1, 2>>), none, Max)).

assemble_errors_test() ->
    F = fun(Op, Fin, P) -> #{op => Op, fin => Fin, payload => P, masked => false} end,
    ?assertEqual({error, {protocol, unexpected_continuation}},
                 beamdeck_agent_ws_frame:assemble(F(continuation, true, <<"x">>), none, 100)),
    {more, A} = beamdeck_agent_ws_frame:assemble(F(binary, false, <<"x">>), none, 100),
    ?assertEqual({error, {protocol, expected_continuation}}, beamdeck_agent_ws_frame:assemble(F(text, true, <<"y">>), A, 100)),
    ?assertEqual({error, {protocol, expected_continuation}}, beamdeck_agent_ws_frame:assemble(F(binary, false, <<"y">>), A, 100)),
    {more, B} = beamdeck_agent_ws_frame:assemble(F(text, false, binary:copy(<<"a">>, 60)), none, 100),
    ?assertEqual({error, {too_big, 120}}, beamdeck_agent_ws_frame:assemble(F(continuation, true, binary:copy(<<"a">>, 60)), B, 100)),
    ?assertEqual({error, invalid_utf8}, beamdeck_agent_ws_frame:assemble(F(text, true, <<255>>), none, 100)),
    %% A UTF-8 sequence split across fragments is fine once whole.
    <<E1, E2, E3>> = <<"€"/utf8>>,
    {more, C} = beamdeck_agent_ws_frame:assemble(F(text, false, <<"a", E1>>), none, 100),
    ?assertEqual({message, text, <<"a€b"/utf8>>, none},
                 beamdeck_agent_ws_frame:assemble(F(continuation, true, <<E2, E3, "b">>), C, 100)),
    %% A sequence left incomplete at the end is not.
    {more, D} = beamdeck_agent_ws_frame:assemble(F(text, false, <<"a">>), none, 100),
    ?assertEqual({error, invalid_utf8}, beamdeck_agent_ws_frame:assemble(F(continuation, true, <<E1, E2>>), D, 100)).

fragment_test() ->
    ?assertEqual([{text, true, <<"abc">>}], beamdeck_agent_ws_frame:fragment(text, <<"abc">>, 3)),
    ?assertEqual([{text, true, <<>>}], beamdeck_agent_ws_frame:fragment(text, <<>>, 3)),
    ?assertEqual([{binary, false, <<"ab">>}, {continuation, false, <<"cd">>}, {continuation, true, <<"e">>}],
                 beamdeck_agent_ws_frame:fragment(binary, <<"abcde">>, 2)),
    ?assertEqual([{text, false, <<"ab">>}, {continuation, true, <<"cd">>}], beamdeck_agent_ws_frame:fragment(text, <<"abcd">>, 2)),
    %% Fragment, encode, decode and reassemble: the message comes back whole.
    Msg = crypto:strong_rand_bytes(100000),
    Wire = iolist_to_binary([beamdeck_agent_ws_frame:encode_frame(Op, C, Fin, crypto:strong_rand_bytes(4))
                             || {Op, Fin, C} <- beamdeck_agent_ws_frame:fragment(binary, Msg, 7000)]),
    ?assertEqual({binary, Msg}, reassemble(Wire, none)).

reassemble(Buf, Asm) ->
    {ok, Frame, Rest} = beamdeck_agent_ws_frame:decode_frame(Buf, 1 bsl 20),
    case beamdeck_agent_ws_frame:assemble(Frame, Asm, 1 bsl 20) of
        {more, Asm1} -> reassemble(Rest, Asm1);
        {message, Type, Msg, none} -> <<>> = Rest, {Type, Msg}
    end.

close_payload_test() ->
    ?assertEqual(<<1000:16>>, beamdeck_agent_ws_frame:close_payload(1000, <<>>)),
    ?assertEqual(<<4401:16, "token revoked">>, beamdeck_agent_ws_frame:close_payload(4401, <<"token revoked">>)),
    Long = beamdeck_agent_ws_frame:close_payload(1000, binary:copy(<<"é"/utf8>>, 100)),
    ?assert(byte_size(Long) =< 125),
    <<_:16, Reason/binary>> = Long,
    ?assertEqual(Reason, unicode:characters_to_binary(Reason)),
    ?assertEqual(122, byte_size(Reason)).

parse_close_test() ->
    ?assertEqual({ok, 1005, <<>>}, beamdeck_agent_ws_frame:parse_close(<<>>)),
    ?assertEqual({ok, 1000, <<>>}, beamdeck_agent_ws_frame:parse_close(<<1000:16>>)),
    ?assertEqual({ok, 4401, <<"token revoked">>}, beamdeck_agent_ws_frame:parse_close(<<4401:16, "token revoked">>)),
    ?assertEqual({ok, 1001, <<"bye é"/utf8>>}, beamdeck_agent_ws_frame:parse_close(<<1001:16, "bye é"/utf8>>)),
    ?assertEqual({ok, 3000, <<>>}, beamdeck_agent_ws_frame:parse_close(<<3000:16>>)),
    ?assertEqual({error, {protocol, bad_close_payload}}, beamdeck_agent_ws_frame:parse_close(<<3>>)),
    [?assertEqual({error, {protocol, {bad_close_code, C}}}, beamdeck_agent_ws_frame:parse_close(<<C:16>>))
     || C <- [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]],
    ?assertEqual({error, invalid_utf8}, beamdeck_agent_ws_frame:parse_close(<<1000:16, 255>>)),
    ?assertEqual(1002, beamdeck_agent_ws_frame:close_code({protocol, x})),
    ?assertEqual(1007, beamdeck_agent_ws_frame:close_code(invalid_utf8)),
    ?assertEqual(1009, beamdeck_agent_ws_frame:close_code({too_big, 5})),
    ?assertEqual(1011, beamdeck_agent_ws_frame:close_code(other)).

%%% LIVE, AGAINST THE NODE `ws' SERVER %%%

live_test_() ->
    {setup,
     fun() -> application:ensure_all_started(ssl), ?SRV:start() end,
     fun ?SRV:stop/1,
     fun(S) ->
             [{timeout, 30, {Name, fun() -> ?SRV:clear(S), F(S) end}} ||
                 {Name, F} <- [{"headers seen by the server", fun headers_seen/1},
                               {"echo text and binary (masked frames)", fun echo/1},
                               {"big message out, fragmented", fun big_out/1},
                               {"big message in", fun big_in/1},
                               {"fragmented message with a ping inside", fun fragments_in/1},
                               {"server ping gets our pong", fun server_ping/1},
                               {"our ping gets the server's pong", fun client_ping/1},
                               {"server closes with 4401", fun server_close/1},
                               {"client closes with code and reason", fun client_close/1},
                               {"401 with a one-line body", fun reject_401/1},
                               {"403 with a chunked body", fun reject_403_chunked/1},
                               {"bad accept key", fun bad_accept/1},
                               {"invalid opcode from the server", fun bad_opcode_live/1},
                               {"masked frame from the server", fun masked_from_server/1},
                               {"message above max_message", fun too_big_live/1},
                               {"partial reads, byte by byte", fun partial_reads/1},
                               {"connection refused", fun refused/1}]]
     end}.

opts(S, Path) ->
    #{host => "127.0.0.1", port => ?SRV:port(S), path => Path}.

connect(S, Path) ->
    {ok, Ws} = ?WS:connect(opts(S, Path)),
    Ws.

conn_id(S, Path) ->
    #{<<"id">> := Id} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"path">> := P}) ->
                                              E =:= <<"connection">> andalso P =:= Path
                                      end),
    Id.

%% Read until Pred holds for the events so far; returns {Ws, Events}.
%% Bytes that came with the handshake answer are in the buffer already.
recv_until(Ws0, Pred) ->
    case ?WS:handle_data(Ws0, <<>>) of
        {ok, Ws, Evs} -> recv_until(Ws, Pred, Evs, 5000);
        {error, Why, Ws} -> {Ws, [{error, Why}]}
    end.

recv_until(Ws, Pred, Acc, Timeout) ->
    case Pred(Acc) of
        true -> {Ws, Acc};
        false ->
            ok = ?WS:activate(Ws),
            receive
                Msg ->
                    case ?WS:socket_message(Msg, Ws) of
                        {data, D} ->
                            case ?WS:handle_data(Ws, D) of
                                {ok, Ws1, Evs} -> recv_until(Ws1, Pred, Acc ++ Evs, Timeout);
                                {error, Why, Ws1} -> {Ws1, Acc ++ [{error, Why}]}
                            end;
                        closed -> {Ws, Acc ++ [closed]};
                        {error, R} -> {Ws, Acc ++ [{error, R}]};
                        other -> error({unexpected_message, Msg})
                    end
            after Timeout -> error({recv_timeout, Acc})
            end
    end.

has(Pattern) -> fun(Evs) -> lists:any(Pattern, Evs) end.

headers_seen(S) ->
    {ok, Ws} = ?WS:connect((opts(S, "/headers"))#{headers => [{"Authorization", "Bearer tok-123"},
                                                              {"X-Beamdeck-Node", <<"rel_test@host">>}]}),
    {Ws1, [{text, Json} | _]} = recv_until(Ws, fun(E) -> E =/= [] end),
    {ok, #{<<"path">> := <<"/headers">>, <<"headers">> := H}} = beamdeck_agent_json:decode(Json),
    ?assertEqual(<<"Bearer tok-123">>, maps:get(<<"authorization">>, H)),
    ?assertEqual(<<"rel_test@host">>, maps:get(<<"x-beamdeck-node">>, H)),
    ?assertEqual(<<"13">>, maps:get(<<"sec-websocket-version">>, H)),
    ?assertEqual(<<"websocket">>, maps:get(<<"upgrade">>, H)),
    ?assertEqual(iolist_to_binary(["127.0.0.1:", integer_to_list(?SRV:port(S))]), maps:get(<<"host">>, H)),
    ?assertNot(maps:is_key(<<"sec-websocket-extensions">>, H)),
    ok = ?WS:close(Ws1, 1000, <<>>).

echo(S) ->
    Ws = connect(S, "/echo"),
    ok = ?WS:send(Ws, text, <<"hello ünïcode"/utf8>>),
    ok = ?WS:send(Ws, binary, <<0, 1, 2, 255>>),
    ok = ?WS:send(Ws, text, [<<"io">>, "list"]),
    ok = ?WS:send(Ws, text, <<>>),
    {Ws1, Evs} = recv_until(Ws, fun(E) -> length(E) >= 4 end),
    ?assertEqual([{text, <<"hello ünïcode"/utf8>>}, {binary, <<0, 1, 2, 255>>},
                  {text, <<"iolist">>}, {text, <<>>}], Evs),
    %% The server (which rejects unmasked client frames) saw them as sent.
    #{<<"text">> := T} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"binary">> := false, <<"size">> := N}) ->
                                               E =:= <<"message">> andalso N > 0
                                       end),
    ?assertEqual(<<"hello ünïcode"/utf8>>, T),
    ok = ?WS:close(Ws1, 1000, <<"done">>).

big_out(S) ->
    Ws = connect(S, "/echo"),
    Big = binary:copy(<<"0123456789abcdef">>, 300000 div 16),  % 300 000 bytes, 3 fragments
    ok = ?WS:send(Ws, text, Big),
    Sha = binary:encode_hex(crypto:hash(sha256, Big)),
    #{<<"size">> := 300000, <<"sha256">> := Got} =
        ?SRV:await(S, fun(#{<<"ev">> := E, <<"size">> := N}) -> E =:= <<"message">> andalso N =:= 300000 end),
    ?assertEqual(string:lowercase(Sha), Got),
    %% The echo comes back as one 64-bit-length frame, over many TCP reads.
    {Ws1, [{text, Echo}]} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual(Big, Echo),
    ok = ?WS:close(Ws1, 1000, <<>>).

big_in(S) ->
    Ws = connect(S, "/big?n=200000"),
    {Ws1, [{text, Msg}]} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual(binary:copy(<<"x">>, 200000), Msg),
    ok = ?WS:close(Ws1, 1000, <<>>).

fragments_in(S) ->
    Ws = connect(S, "/fragments"),
    Id = conn_id(S, <<"/fragments">>),
    {Ws1, Evs} = recv_until(Ws, has(fun(E) -> element(1, E) =:= text end)),
    ?assertEqual([{ping, <<"mid">>}, {text, <<"frag-one|frag-two|frag-three">>}], Evs),
    %% Our automatic pong reached the server.
    #{<<"data">> := <<"mid">>} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) ->
                                                       E =:= <<"pong">> andalso I =:= Id
                                               end),
    ok = ?WS:close(Ws1, 1000, <<>>).

server_ping(S) ->
    Ws = connect(S, "/ping"),
    {Ws1, Evs} = recv_until(Ws, has(fun(E) -> E =:= {text, <<"pong:hello-ping">>} end)),
    ?assertEqual([{ping, <<"hello-ping">>}, {text, <<"pong:hello-ping">>}], Evs),
    ok = ?WS:close(Ws1, 1000, <<>>).

client_ping(S) ->
    Ws = connect(S, "/echo"),
    ok = ?WS:ping(Ws, <<"are you there">>),
    {Ws1, Evs} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual([{pong, <<"are you there">>}], Evs),
    ok = ?WS:close(Ws1, 1000, <<>>).

server_close(S) ->
    Ws = connect(S, "/close?code=4401&reason=token%20revoked"),
    Id = conn_id(S, <<"/close">>),
    {Ws1, Evs} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual([{close, 4401, <<"token revoked">>}], Evs),
    ok = ?WS:abort(Ws1),
    %% We echoed the code: the server's close completed with it.
    #{<<"code">> := 4401} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) ->
                                                  E =:= <<"close">> andalso I =:= Id
                                          end).

client_close(S) ->
    Ws = connect(S, "/echo"),
    Id = conn_id(S, <<"/echo">>),
    ok = ?WS:close(Ws, 1001, <<"agent stopping">>),
    #{<<"code">> := Code, <<"reason">> := Reason} =
        ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) -> E =:= <<"close">> andalso I =:= Id end),
    ?assertEqual({1001, <<"agent stopping">>}, {Code, Reason}).

reject_401(S) ->
    ?assertEqual({error, {http, 401, <<"token revoked">>}},
                 ?WS:connect(opts(S, "/reject?status=401&body=token%20revoked"))).

reject_403_chunked(S) ->
    ?assertEqual({error, {http, 403, <<"token bound to node a@b">>}},
                 ?WS:connect(opts(S, "/reject-chunked?status=403&body=token%20bound%20to%20node%20a@b"))).

bad_accept(S) ->
    ?assertEqual({error, {handshake, bad_accept}}, ?WS:connect(opts(S, "/badaccept"))).

bad_opcode_live(S) ->
    Ws = connect(S, "/raw?hex=8300"),
    {_, Evs} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual([{error, {protocol, {bad_opcode, 3}}}], Evs),
    %% We sent a masked close frame with 1002 (0x88, mask bit + length 2).
    #{<<"hex">> := <<"8882", _/binary>> = Hex} =
        ?SRV:await(S, fun(#{<<"ev">> := E}) -> E =:= <<"rawData">> end),
    <<_:4/binary, KeyHex:8/binary, CodeHex:4/binary>> = Hex,
    <<Key:2/binary, _/binary>> = binary:decode_hex(KeyHex),
    ?assertEqual(<<1002:16>>, crypto:exor(binary:decode_hex(CodeHex), Key)),
    ?WS:abort(Ws).

masked_from_server(S) ->
    Frame = iolist_to_binary(beamdeck_agent_ws_frame:encode_frame(text, <<"hi">>, true, <<1, 2, 3, 4>>)),
    Ws = connect(S, "/raw?hex=" ++ binary_to_list(binary:encode_hex(Frame))),
    {_, Evs} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual([{error, {protocol, masked_server_frame}}], Evs),
    ?WS:abort(Ws).

too_big_live(S) ->
    {ok, Ws} = ?WS:connect((opts(S, "/big?n=5000"))#{max_message => 1000}),
    Id = conn_id(S, <<"/big">>),
    {_, Evs} = recv_until(Ws, fun(E) -> E =/= [] end),
    ?assertEqual([{error, {too_big, 5000}}], Evs),
    ?WS:abort(Ws),
    #{<<"code">> := 1009} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) ->
                                                  E =:= <<"close">> andalso I =:= Id
                                          end).

partial_reads(S) ->
    %% A real socket (pongs go out on it), fed by hand one byte at a time.
    Ws = connect(S, "/silent"),
    Id = conn_id(S, <<"/silent">>),
    Wire = iolist_to_binary([beamdeck_agent_ws_frame:encode_frame(text, <<"first">>, false, none),
                             beamdeck_agent_ws_frame:encode_frame(ping, <<"pp">>, true, none),
                             beamdeck_agent_ws_frame:encode_frame(continuation, binary:copy(<<"y">>, 70000), true, none),
                             beamdeck_agent_ws_frame:encode_frame(binary, <<1, 2, 3>>, true, none)]),
    {Ws1, Evs} = lists:foldl(fun(B, {W, Acc}) ->
                                     {ok, W1, E} = ?WS:handle_data(W, <<B>>),
                                     {W1, Acc ++ E}
                             end, {Ws, []}, binary_to_list(Wire)),
    ?assertEqual([{ping, <<"pp">>}, {text, <<"first", (binary:copy(<<"y">>, 70000))/binary>>},
                  {binary, <<1, 2, 3>>}], Evs),
    #{<<"data">> := <<"pp">>} = ?SRV:await(S, fun(#{<<"ev">> := E, <<"id">> := I}) ->
                                                      E =:= <<"pong">> andalso I =:= Id
                                              end),
    ok = ?WS:close(Ws1, 1000, <<>>).

refused(_S) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    ?assertEqual({error, {connect, econnrefused}},
                 ?WS:connect(#{host => "127.0.0.1", port => Port, path => "/agent"})).

%%% TLS %%%

tls_test_() ->
    {setup,
     fun() ->
             {ok, _} = application:ensure_all_started(ssl),
             Dir = temp_dir("beamdeck_ws_tls_"),
             #{ca := Ca, cert := Cert, key := Key} = ?SRV:make_cert(Dir, "localhost"),
             {?SRV:start(["--tls", Cert, Key]), Ca, Dir}
     end,
     fun({S, _Ca, Dir}) -> ?SRV:stop(S), file:del_dir_r(Dir) end,
     fun({S, Ca, _Dir}) ->
             [{timeout, 30, {"wss echo without verification", fun() -> wss_no_verify(S) end}},
              {timeout, 30, {"wss by IP still checks the CA", fun() -> wss_wrong_ip(S, Ca) end}},
              {timeout, 30, {"wss refuses an unknown CA", fun() -> wss_unknown_ca(S) end}},
              {timeout, 30, {"wss trusts a given CA file, by name", fun() -> wss_cacert(S, Ca, "localhost") end}},
              {timeout, 30, {"wss trusts a given CA file, by IP", fun() -> wss_cacert(S, Ca, "127.0.0.1") end}},
              {timeout, 60, {"wss rejects a wrong hostname", fun wss_wrong_host/0}}]
     end}.

temp_dir(Prefix) ->
    Base = case os:getenv("TMPDIR") of
               false -> "/tmp";
               D -> D
           end,
    filename:join(Base, Prefix ++ integer_to_list(erlang:unique_integer([positive]))).

tls_opts(S, Host) ->
    #{host => Host, port => ?SRV:port(S), path => "/echo", tls => true}.

wss_no_verify(S) ->
    {ok, Ws} = ?WS:connect((tls_opts(S, "127.0.0.1"))#{tls_verify => false}),
    ok = ?WS:send(Ws, text, <<"over tls">>),
    Big = crypto:strong_rand_bytes(150000),
    ok = ?WS:send(Ws, binary, Big),
    {Ws1, Evs} = recv_until(Ws, fun(E) -> length(E) >= 2 end),
    ?assertEqual([{text, <<"over tls">>}, {binary, Big}], Evs),
    ok = ?WS:close(Ws1, 1000, <<>>).

wss_unknown_ca(S) ->
    %% Verification is on by default (OS CA store): the test CA is unknown.
    ?assertMatch({error, {tls, _}}, ?WS:connect(tls_opts(S, "localhost"))).

wss_cacert(S, Ca, Host) ->
    {ok, Ws} = ?WS:connect((tls_opts(S, Host))#{cacertfile => Ca}),
    ok = ?WS:send(Ws, text, <<"verified">>),
    {Ws1, [{text, <<"verified">>}]} = recv_until(Ws, fun(E) -> E =/= [] end),
    ok = ?WS:close(Ws1, 1000, <<>>).

wss_wrong_ip(S, Ca) ->
    %% An IP literal gets the CA check too (the IP match: wss_wrong_host/0).
    ?assertMatch({error, {tls, _}}, ?WS:connect(tls_opts(S, "127.0.0.1"))),
    {ok, Ws} = ?WS:connect((tls_opts(S, "127.0.0.1"))#{cacertfile => Ca}),
    ?WS:abort(Ws).

wss_wrong_host() ->
    %% A server whose certificate names another host: trusted CA, wrong name.
    Dir = temp_dir("beamdeck_ws_tls_other_"),
    #{ca := Ca, cert := Cert, key := Key} = ?SRV:make_cert(Dir, "other.example"),
    S = ?SRV:start(["--tls", Cert, Key]),
    try
        ?assertMatch({error, {tls, _}}, ?WS:connect((tls_opts(S, "localhost"))#{cacertfile => Ca})),
        %% An IP literal that the certificate does not name is refused too.
        ?assertEqual({error, {tls, {bad_cert, hostname_check_failed}}},
                     ?WS:connect((tls_opts(S, "127.0.0.1"))#{cacertfile => Ca})),
        %% Same server, verification off: the name alone was the reason.
        {ok, Ws} = ?WS:connect((tls_opts(S, "localhost"))#{tls_verify => false}),
        ?WS:abort(Ws)
    after
        ?SRV:stop(S),
        file:del_dir_r(Dir)
    end.
