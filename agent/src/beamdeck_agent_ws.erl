%%% @doc A small RFC 6455 WebSocket client over `gen_tcp' and `ssl'.
%%%
%%% The socket belongs to whoever calls `connect/1' (hand it over with
%%% `controlling_process/2'); this module keeps no process of its own. Reads
%%% run in `{active, once}' mode: the owner calls `activate/1', receives a
%%% socket message, maps it with `socket_message/2' and feeds the bytes to
%%% `handle_data/2', which buffers partial frames, reassembles fragmented
%%% messages, answers pings and close frames, and returns whole messages.
%%%
%%% The pure parts touch no socket: the frame codec and message assembly
%%% are beamdeck_agent_ws_frame, the handshake request and response parsing
%%% beamdeck_agent_ws_handshake.
%%%
%%% Client rules kept here: every frame sent is masked with a fresh random
%%% key; a masked frame from the server, reserved bits, unknown opcodes,
%%% fragmented or long control frames and invalid UTF-8 in text are protocol
%%% errors (closed with 1002/1007); a message above `max_message' is refused
%%% with 1009 as soon as its length is known, before its payload is read.
-module(beamdeck_agent_ws).

%% Socket side.
-export([connect/1, controlling_process/2, activate/1, socket_message/2,
         handle_data/2, send/3, ping/2, close/3, abort/1]).

-define(CLOSE_WAIT_MS, 1000).

-record(ws, {transport :: gen_tcp | ssl,
             socket :: gen_tcp:socket() | ssl:sslsocket(),
             buf = <<>> :: binary(),
             asm = none :: assembly(),
             max_message :: pos_integer(),
             frag_size :: pos_integer(),
             close_sent = false :: boolean()}).

-opaque ws() :: #ws{}.
-type frame() :: beamdeck_agent_ws_frame:frame().
-type assembly() :: beamdeck_agent_ws_frame:assembly().
-type event() :: beamdeck_agent_ws_frame:event().
-type proto_error() :: beamdeck_agent_ws_frame:proto_error().
-type connect_error() :: {connect, term()} | {tls, term()} | {http, Status :: 100..999, Body :: binary()}
                       | {handshake, term()} | {bad_header, term()}.
-type opts() :: #{host := string(), port := inet:port_number(), path := string(),
                  tls => boolean(), tls_verify => boolean(), cacertfile => file:filename(),
                  headers => [{iodata(), iodata()}], connect_timeout => timeout(),
                  handshake_timeout => non_neg_integer(), send_timeout => pos_integer(),
                  max_message => pos_integer(), frag_size => pos_integer()}.
-export_type([ws/0, frame/0, event/0, assembly/0, opts/0, connect_error/0, proto_error/0]).

%%% SOCKET SIDE %%%

%% @doc Open a TCP or TLS connection and run the opening handshake.
%% A non-101 answer gives `{error, {http, Status, FirstBodyLine}}'.
-spec connect(Opts) -> {ok, ws()} | {error, connect_error()} when Opts :: opts().
connect(#{host := Host, port := Port, path := Path} = Opts) ->
    Tls = maps:get(tls, Opts, false),
    Key = beamdeck_agent_ws_handshake:new_key(),
    Headers = maps:get(headers, Opts, []),
    case beamdeck_agent_ws_handshake:handshake_request(Path, Key, [{"Host", beamdeck_agent_ws_handshake:host_header(Host, Port, Tls)} | Headers]) of
        {ok, Request} ->
            case open(Host, Port, Tls, Opts) of
                {ok, Transport, Sock} ->
                    Deadline = deadline(maps:get(handshake_timeout, Opts, 10000)),
                    Result = handshake(Transport, Sock, Request, Key, Deadline),
                    case Result of
                        {ok, Rest} ->
                            {ok, #ws{transport = Transport, socket = Sock, buf = Rest,
                                     max_message = maps:get(max_message, Opts, 1048576),
                                     frag_size = maps:get(frag_size, Opts, 131072)}};
                        {error, _} = Error ->
                            _ = Transport:close(Sock),
                            Error
                    end;
                {error, _} = Error -> Error
            end;
        {error, _} = Error -> Error
    end.

open(Host, Port, Tls, Opts) ->
    Timeout = maps:get(connect_timeout, Opts, 10000),
    TcpOpts = [binary, {active, false}, {packet, raw}, {nodelay, true}, {keepalive, true},
               {send_timeout, maps:get(send_timeout, Opts, 10000)}, {send_timeout_close, true}
               | family(Host)],
    case Tls of
        false ->
            case gen_tcp:connect(Host, Port, TcpOpts, Timeout) of
                {ok, S} -> {ok, gen_tcp, S};
                {error, R} -> {error, {connect, R}}
            end;
        true ->
            case tls_opts(Host, Opts) of
                {ok, TlsOpts} ->
                    case ssl:connect(Host, Port, TcpOpts ++ TlsOpts, Timeout) of
                        {ok, S} ->
                            case check_ip_host(S, Host, Opts) of
                                ok -> {ok, ssl, S};
                                {error, _} = Error -> _ = ssl:close(S), Error
                            end;
                        {error, R} when R =:= econnrefused; R =:= timeout; R =:= nxdomain;
                                        R =:= ehostunreach; R =:= enetunreach ->
                            {error, {connect, R}};
                        {error, R} -> {error, {tls, R}}
                    end;
                {error, _} = Error -> Error
            end
    end.

family(Host) ->
    case inet:parse_ipv6strict_address(Host) of
        {ok, _} -> [inet6];
        _ -> []
    end.

%% verify_peer with the OS CA store (OTP 25+) and an https-style hostname
%% check, unless verification was turned off (tests, self-signed servers).
%% ssl checks a host name itself; for an IP literal (no SNI) it would look
%% for a DNS name, so check_ip_host/3 matches the IP address afterwards.
tls_opts(Host, Opts) ->
    IsIp = is_ip(Host),
    Sni = case IsIp of
              true -> [{server_name_indication, disable}];
              false -> [{server_name_indication, Host}]
          end,
    %% ssl logs every alert at notice level; the caller logs failures once.
    Common = [{log_level, warning} | Sni],
    case maps:get(tls_verify, Opts, true) of
        false ->
            {ok, [{verify, verify_none} | Common]};
        true ->
            Check = case IsIp of
                        true -> [];
                        false -> [{customize_hostname_check,
                                   [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}]
                    end,
            case ca_opts(Opts) of
                {ok, Ca} -> {ok, [{verify, verify_peer}, {depth, 10}] ++ Ca ++ Check ++ Common};
                {error, _} = Error -> Error
            end
    end.

is_ip(Host) ->
    element(1, inet:parse_address(Host)) =:= ok.

check_ip_host(S, Host, Opts) ->
    case is_ip(Host) andalso maps:get(tls_verify, Opts, true) of
        false -> ok;
        true ->
            {ok, Ip} = inet:parse_address(Host),
            case ssl:peercert(S) of
                {ok, Der} ->
                    case public_key:pkix_verify_hostname(Der, [{ip, Ip}]) of
                        true -> ok;
                        false -> {error, {tls, {bad_cert, hostname_check_failed}}}
                    end;
                {error, R} -> {error, {tls, R}}
            end
    end.

ca_opts(#{cacertfile := File}) when File =/= undefined ->
    {ok, [{cacertfile, File}]};
ca_opts(_) ->
    try public_key:cacerts_get() of
        [] -> {error, {tls, no_ca_certificates}};
        Certs -> {ok, [{cacerts, Certs}]}
    catch
        _:Why -> {error, {tls, {no_ca_certificates, Why}}}
    end.

handshake(T, S, Request, Key, Deadline) ->
    case T:send(S, Request) of
        ok ->
            case recv_head(T, S, <<>>, Deadline) of
                {ok, 101, Headers, Rest} ->
                    case beamdeck_agent_ws_handshake:check_upgrade(Headers, Key) of
                        ok -> {ok, Rest};
                        {error, _} = Error -> Error
                    end;
                {ok, Status, Headers, Rest} ->
                    Body = recv_body(T, S, Headers, Rest, Deadline),
                    {error, {http, Status, beamdeck_agent_ws_handshake:body_line(Body)}};
                {error, _} = Error -> Error
            end;
        {error, R} -> {error, {connect, R}}
    end.

recv_head(T, S, Buf, Deadline) ->
    case beamdeck_agent_ws_handshake:parse_response(Buf) of
        more ->
            case T:recv(S, 0, remaining(Deadline)) of
                {ok, Data} -> recv_head(T, S, <<Buf/binary, Data/binary>>, Deadline);
                {error, closed} -> {error, {handshake, closed}};
                {error, timeout} -> {error, {handshake, timeout}};
                {error, R} -> {error, {connect, R}}
            end;
        {ok, _, _, _} = Ok -> Ok;
        {error, R} -> {error, {handshake, R}}
    end.

%% The body of a refused upgrade: what arrived before the server closed, the
%% deadline passed, or the length it announced (capped) was read.
recv_body(T, S, Headers, Buf, Deadline) ->
    case beamdeck_agent_ws_handshake:body_complete(Headers, Buf) of
        {done, Body} -> Body;
        more ->
            case T:recv(S, 0, remaining(Deadline)) of
                {ok, Data} -> recv_body(T, S, Headers, <<Buf/binary, Data/binary>>, Deadline);
                {error, _} ->
                    %% Closed (or out of time) before the announced end.
                    binary:part(Buf, 0, min(byte_size(Buf), beamdeck_agent_ws_handshake:max_body_bytes()))
            end
    end.

deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% @doc Give the socket to another process (the one that will read it).
-spec controlling_process(Ws, Owner) -> ok | {error, term()} when Ws :: ws(), Owner :: pid().
controlling_process(#ws{transport = T, socket = S}, Pid) ->
    T:controlling_process(S, Pid).

%% @doc Ask for the next chunk of data as one message (`{active, once}').
-spec activate(Ws) -> ok | {error, term()} when Ws :: ws().
activate(#ws{transport = gen_tcp, socket = S}) -> inet:setopts(S, [{active, once}]);
activate(#ws{transport = ssl, socket = S}) -> ssl:setopts(S, [{active, once}]).

%% @doc Classify a message the owner received: data for this socket, its
%% closing, its error, or something else.
-spec socket_message(Msg, Ws) -> {data, binary()} | closed | {error, term()} | other
    when Msg :: term(), Ws :: ws().
socket_message({tcp, S, Data}, #ws{socket = S}) -> {data, Data};
socket_message({ssl, S, Data}, #ws{socket = S}) -> {data, Data};
socket_message({tcp_closed, S}, #ws{socket = S}) -> closed;
socket_message({ssl_closed, S}, #ws{socket = S}) -> closed;
socket_message({tcp_error, S, R}, #ws{socket = S}) -> {error, R};
socket_message({ssl_error, S, R}, #ws{socket = S}) -> {error, R};
socket_message(_, _) -> other.

%% @doc Feed received bytes (`<<>>' to process bytes left from the handshake).
%% Pings are answered and a close frame is answered before it is returned.
%% On a protocol error the close frame with the matching code is sent and
%% `{error, Reason, Ws}' returned; the caller then drops the socket.
-spec handle_data(Ws, Data) -> {ok, ws(), [event()]} | {error, proto_error() | term(), ws()}
    when Ws :: ws(), Data :: binary().
handle_data(#ws{buf = Buf} = Ws, Data) ->
    frames(Ws#ws{buf = <<>>}, <<Buf/binary, Data/binary>>, []).

frames(Ws, Buf, Acc) ->
    case beamdeck_agent_ws_frame:decode_frame(Buf, Ws#ws.max_message) of
        more ->
            {ok, Ws#ws{buf = Buf}, lists:reverse(Acc)};
        {ok, #{masked := true}, _} ->
            fail(Ws, {protocol, masked_server_frame});
        {ok, Frame, Rest} ->
            case beamdeck_agent_ws_frame:assemble(Frame, Ws#ws.asm, Ws#ws.max_message) of
                {more, Asm} -> frames(Ws#ws{asm = Asm}, Rest, Acc);
                {message, Type, Msg, Asm} -> frames(Ws#ws{asm = Asm}, Rest, [{Type, Msg} | Acc]);
                {control, ping, P, Asm} ->
                    case Ws#ws.close_sent orelse send_frame(Ws, pong, P, true) =:= ok of
                        true -> frames(Ws#ws{asm = Asm}, Rest, [{ping, P} | Acc]);
                        false -> {error, {send_failed, pong}, Ws}
                    end;
                {control, pong, P, Asm} ->
                    frames(Ws#ws{asm = Asm}, Rest, [{pong, P} | Acc]);
                {control, close, P, _Asm} ->
                    case beamdeck_agent_ws_frame:parse_close(P) of
                        {ok, Code, Reason} ->
                            %% Echo the code; after a close nothing more is read.
                            Reply = case Code of
                                        1005 -> <<>>;
                                        _ -> beamdeck_agent_ws_frame:close_payload(Code, <<>>)
                                    end,
                            _ = Ws#ws.close_sent orelse send_frame(Ws, close, Reply, true),
                            {ok, Ws#ws{buf = <<>>, close_sent = true},
                             lists:reverse(Acc, [{close, Code, Reason}])};
                        {error, Why} -> fail(Ws, Why)
                    end;
                {error, Why} -> fail(Ws, Why)
            end;
        {error, Why} ->
            fail(Ws, Why)
    end.

fail(Ws, Why) ->
    _ = Ws#ws.close_sent orelse
        send_frame(Ws, close, beamdeck_agent_ws_frame:close_payload(beamdeck_agent_ws_frame:close_code(Why), <<>>), true),
    {error, Why, Ws#ws{close_sent = true, buf = <<>>, asm = none}}.

%% @doc Send a text or binary message, fragmented above the fragment size.
%% The socket's send timeout bounds how long a stuck peer can block this.
-spec send(Ws, Type, Data) -> ok | {error, term()}
    when Ws :: ws(), Type :: text | binary, Data :: iodata().
send(#ws{transport = T, socket = S, frag_size = FragSize}, Type, Data) ->
    Frames = [beamdeck_agent_ws_frame:encode_frame(Op, Chunk, Fin, mask_key())
              || {Op, Fin, Chunk} <- beamdeck_agent_ws_frame:fragment(Type, iolist_to_binary(Data), FragSize)],
    T:send(S, Frames).

%% @doc Send a ping (payload at most 125 bytes).
-spec ping(Ws, Payload) -> ok | {error, term()} when Ws :: ws(), Payload :: binary().
ping(Ws, Payload) when byte_size(Payload) =< 125 ->
    send_frame(Ws, ping, Payload, true).

%% @doc Start the closing handshake, wait briefly for the server's close
%% frame, and close the socket. Always returns `ok'.
-spec close(Ws, Code, Reason) -> ok when Ws :: ws(), Code :: 1000..4999, Reason :: binary().
close(#ws{transport = T, socket = S} = Ws, Code, Reason) ->
    case Ws#ws.close_sent of
        true -> ok;
        false ->
            _ = send_frame(Ws, close, beamdeck_agent_ws_frame:close_payload(Code, Reason), true),
            _ = case T of
                    gen_tcp -> inet:setopts(S, [{active, false}]);
                    ssl -> ssl:setopts(S, [{active, false}])
                end,
            await_close(Ws, deadline(?CLOSE_WAIT_MS))
    end,
    abort(Ws).

await_close(#ws{transport = T, socket = S} = Ws, Deadline) ->
    case T:recv(S, 0, remaining(Deadline)) of
        {ok, Data} ->
            case handle_data(Ws#ws{close_sent = true}, Data) of
                {ok, Ws1, Events} ->
                    case lists:keymember(close, 1, Events) of
                        true -> ok;
                        false -> await_close(Ws1, Deadline)
                    end;
                {error, _, _} -> ok
            end;
        {error, _} -> ok
    end.

%% @doc Close the socket without a closing handshake.
-spec abort(Ws) -> ok when Ws :: ws().
abort(#ws{transport = T, socket = S}) ->
    _ = T:close(S),
    ok.

send_frame(#ws{transport = T, socket = S}, Op, Payload, Fin) ->
    T:send(S, beamdeck_agent_ws_frame:encode_frame(Op, Payload, Fin, mask_key())).

mask_key() -> crypto:strong_rand_bytes(4).
