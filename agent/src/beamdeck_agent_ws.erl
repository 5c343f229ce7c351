%%% @doc A small RFC 6455 WebSocket client over `gen_tcp' and `ssl'.
%%%
%%% The socket belongs to whoever calls `connect/1' (hand it over with
%%% `controlling_process/2'); this module keeps no process of its own. Reads
%%% run in `{active, once}' mode: the owner calls `activate/1', receives a
%%% socket message, maps it with `socket_message/2' and feeds the bytes to
%%% `handle_data/2', which buffers partial frames, reassembles fragmented
%%% messages, answers pings and close frames, and returns whole messages.
%%%
%%% The pure parts (frame codec, message assembly, handshake request and
%%% response parsing) are exported for the tests; they touch no socket.
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
%% Pure parts.
-export([new_key/0, accept_key/1, host_header/3, handshake_request/3, parse_response/1,
         check_upgrade/2, body_complete/2, body_line/1,
         encode_frame/4, decode_frame/2, assemble/3, fragment/3,
         close_payload/2, parse_close/1, close_code/1]).

-define(GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").
-define(MAX_HEADER_BYTES, 16384).
-define(MAX_BODY_BYTES, 4096).
-define(MAX_BODY_LINE, 300).
-define(CLOSE_WAIT_MS, 1000).

-record(ws, {transport :: gen_tcp | ssl,
             socket :: gen_tcp:socket() | ssl:sslsocket(),
             buf = <<>> :: binary(),
             asm = none :: assembly(),
             max_message :: pos_integer(),
             frag_size :: pos_integer(),
             close_sent = false :: boolean()}).

-opaque ws() :: #ws{}.
-type opcode() :: continuation | text | binary | close | ping | pong.
-type frame() :: #{fin := boolean(), op := opcode(), payload := binary(), masked := boolean()}.
-type assembly() :: none | {text | binary, Size :: non_neg_integer(), Parts :: [binary()]}.
-type event() :: {text, binary()} | {binary, binary()} | {ping, binary()} | {pong, binary()}
               | {close, Code :: non_neg_integer(), Reason :: binary()}.
-type proto_error() :: {protocol, atom() | {atom(), term()}} | {too_big, non_neg_integer()}
                     | invalid_utf8.
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
    Key = new_key(),
    Headers = maps:get(headers, Opts, []),
    case handshake_request(Path, Key, [{"Host", host_header(Host, Port, Tls)} | Headers]) of
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
                    case check_upgrade(Headers, Key) of
                        ok -> {ok, Rest};
                        {error, _} = Error -> Error
                    end;
                {ok, Status, Headers, Rest} ->
                    Body = recv_body(T, S, Headers, Rest, Deadline),
                    {error, {http, Status, body_line(Body)}};
                {error, _} = Error -> Error
            end;
        {error, R} -> {error, {connect, R}}
    end.

recv_head(T, S, Buf, Deadline) ->
    case parse_response(Buf) of
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
    case body_complete(Headers, Buf) of
        {done, Body} -> Body;
        more ->
            case T:recv(S, 0, remaining(Deadline)) of
                {ok, Data} -> recv_body(T, S, Headers, <<Buf/binary, Data/binary>>, Deadline);
                {error, _} ->
                    %% Closed (or out of time) before the announced end.
                    binary:part(Buf, 0, min(byte_size(Buf), ?MAX_BODY_BYTES))
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
    case decode_frame(Buf, Ws#ws.max_message) of
        more ->
            {ok, Ws#ws{buf = Buf}, lists:reverse(Acc)};
        {ok, #{masked := true}, _} ->
            fail(Ws, {protocol, masked_server_frame});
        {ok, Frame, Rest} ->
            case assemble(Frame, Ws#ws.asm, Ws#ws.max_message) of
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
                    case parse_close(P) of
                        {ok, Code, Reason} ->
                            %% Echo the code; after a close nothing more is read.
                            Reply = case Code of
                                        1005 -> <<>>;
                                        _ -> close_payload(Code, <<>>)
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
        send_frame(Ws, close, close_payload(close_code(Why), <<>>), true),
    {error, Why, Ws#ws{close_sent = true, buf = <<>>, asm = none}}.

%% @doc Send a text or binary message, fragmented above the fragment size.
%% The socket's send timeout bounds how long a stuck peer can block this.
-spec send(Ws, Type, Data) -> ok | {error, term()}
    when Ws :: ws(), Type :: text | binary, Data :: iodata().
send(#ws{transport = T, socket = S, frag_size = FragSize}, Type, Data) ->
    Frames = [encode_frame(Op, Chunk, Fin, mask_key())
              || {Op, Fin, Chunk} <- fragment(Type, iolist_to_binary(Data), FragSize)],
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
            _ = send_frame(Ws, close, close_payload(Code, Reason), true),
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
    T:send(S, encode_frame(Op, Payload, Fin, mask_key())).

mask_key() -> crypto:strong_rand_bytes(4).

%%% HANDSHAKE (PURE) %%%

%% @doc A fresh `Sec-WebSocket-Key': 16 random bytes, base64.
-spec new_key() -> binary().
new_key() -> base64:encode(crypto:strong_rand_bytes(16)).

%% @doc The `Sec-WebSocket-Accept' the server must answer for `Key'.
-spec accept_key(Key) -> binary() when Key :: binary().
accept_key(Key) -> base64:encode(crypto:hash(sha, [Key, ?GUID])).

%% @doc The `Host' header: the port only when not the scheme's default,
%% IPv6 literals in brackets.
-spec host_header(Host, Port, Tls) -> string()
    when Host :: string(), Port :: inet:port_number(), Tls :: boolean().
host_header(Host, Port, Tls) ->
    H = case inet:parse_ipv6strict_address(Host) of
            {ok, _} -> "[" ++ Host ++ "]";
            _ -> Host
        end,
    case {Tls, Port} of
        {false, 80} -> H;
        {true, 443} -> H;
        _ -> H ++ ":" ++ integer_to_list(Port)
    end.

%% @doc The upgrade request. Header names and values with CR or LF are
%% refused (they would inject headers).
-spec handshake_request(Path, Key, Headers) -> {ok, iodata()} | {error, {bad_header, term()}}
    when Path :: iodata(), Key :: binary(), Headers :: [{iodata(), iodata()}].
handshake_request(Path, Key, Headers) ->
    All = [{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
           {"Sec-WebSocket-Key", Key}, {"Sec-WebSocket-Version", "13"} | Headers],
    Bad = [N || {N, V} <- [{"Path", Path} | All], not header_safe(N, V)],
    case Bad of
        [] ->
            {ok, ["GET ", Path, " HTTP/1.1\r\n",
                  [[N, ": ", V, "\r\n"] || {N, V} <- All],
                  "\r\n"]};
        [Name | _] ->
            {error, {bad_header, iolist_to_binary(Name)}}
    end.

header_safe(N, V) ->
    Bin = iolist_to_binary([N, V]),
    binary:match(Bin, [<<"\r">>, <<"\n">>, <<0>>]) =:= nomatch.

%% @doc Parse a response head: `more' until the blank line arrives.
%% Header names are lower-cased; values are trimmed.
-spec parse_response(Buf) -> more | {ok, Status, Headers, Rest} | {error, Reason}
    when Buf :: binary(), Status :: 100..999, Headers :: [{binary(), binary()}],
         Rest :: binary(), Reason :: headers_too_large | bad_status_line.
parse_response(Buf) ->
    case binary:match(Buf, <<"\r\n\r\n">>) of
        nomatch when byte_size(Buf) > ?MAX_HEADER_BYTES -> {error, headers_too_large};
        nomatch -> more;
        {Pos, 4} when Pos > ?MAX_HEADER_BYTES -> {error, headers_too_large};
        {Pos, 4} ->
            <<Head:Pos/binary, _:4/binary, Rest/binary>> = Buf,
            [StatusLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
            case status(StatusLine) of
                {ok, Status} -> {ok, Status, headers(Lines), Rest};
                error -> {error, bad_status_line}
            end
    end.

status(<<"HTTP/1.", V, " ", A, B, C, Tail/binary>>)
  when V >= $0, V =< $9, A >= $1, A =< $9, B >= $0, B =< $9, C >= $0, C =< $9,
       (Tail =:= <<>> orelse binary_part(Tail, 0, 1) =:= <<" ">>) ->
    {ok, (A - $0) * 100 + (B - $0) * 10 + (C - $0)};
status(_) -> error.

headers(Lines) ->
    [{string:lowercase(string:trim(N)), string:trim(V)}
     || L <- Lines, [N, V] <- [binary:split(L, <<":">>)]].

%% @doc Check a 101 answer: `Upgrade: websocket', `Connection: upgrade', the
%% accept key, and no extension or subprotocol we did not ask for.
-spec check_upgrade(Headers, Key) -> ok | {error, {handshake, atom()}}
    when Headers :: [{binary(), binary()}], Key :: binary().
check_upgrade(Headers, Key) ->
    Get = fun(N) -> proplists:get_value(N, Headers) end,
    Connection = [string:trim(T)
                  || T <- string:lexemes(string:lowercase(value(Get(<<"connection">>))), ",")],
    Accept = Get(<<"sec-websocket-accept">>),
    Expected = accept_key(Key),
    case string:lowercase(value(Get(<<"upgrade">>))) of
        <<"websocket">> ->
            case lists:member(<<"upgrade">>, Connection) of
                false -> {error, {handshake, missing_connection_upgrade}};
                true when Accept =:= undefined -> {error, {handshake, missing_accept}};
                true when Accept =/= Expected -> {error, {handshake, bad_accept}};
                true ->
                    case {Get(<<"sec-websocket-extensions">>), Get(<<"sec-websocket-protocol">>)} of
                        {undefined, undefined} -> ok;
                        {undefined, _} -> {error, {handshake, unexpected_subprotocol}};
                        _ -> {error, {handshake, unexpected_extension}}
                    end
            end;
        _ -> {error, {handshake, bad_upgrade}}
    end.

value(undefined) -> <<>>;
value(V) -> V.

%% @doc Whether a refused upgrade's body is complete: by `Content-Length'
%% or chunked coding, capped at 4 KiB. Bodies without either end when the
%% server closes (the caller decides).
-spec body_complete(Headers, Buf) -> {done, binary()} | more
    when Headers :: [{binary(), binary()}], Buf :: binary().
body_complete(Headers, Buf) ->
    Length = proplists:get_value(<<"content-length">>, Headers),
    Chunked = string:lowercase(value(proplists:get_value(<<"transfer-encoding">>, Headers))),
    if
        Length =/= undefined ->
            case int_or_invalid(Length, 10) of
                N when is_integer(N), N >= 0 ->
                    Want = min(N, ?MAX_BODY_BYTES),
                    case Buf of
                        <<Body:Want/binary, _/binary>> -> {done, Body};
                        _ -> more
                    end;
                _ -> cap_or_more(Buf)
            end;
        Chunked =:= <<"chunked">> ->
            dechunk(Buf, []);
        true ->
            cap_or_more(Buf)
    end.

%% A header or chunk-size number; anything unparsable is `invalid'.
int_or_invalid(Bin, Base) ->
    try binary_to_integer(Bin, Base) catch error:_ -> invalid end.

cap_or_more(Buf) when byte_size(Buf) >= ?MAX_BODY_BYTES -> {done, binary:part(Buf, 0, ?MAX_BODY_BYTES)};
cap_or_more(_) -> more.

dechunk(Buf, Acc) ->
    case iolist_size(Acc) >= ?MAX_BODY_BYTES of
        true -> {done, iolist_to_binary(lists:reverse(Acc))};
        false ->
            case binary:split(Buf, <<"\r\n">>) of
                [SizeLine, Rest] ->
                    [Hex | _] = binary:split(SizeLine, <<";">>),
                    case int_or_invalid(string:trim(Hex), 16) of
                        0 -> {done, iolist_to_binary(lists:reverse(Acc))};
                        N when is_integer(N), N > 0 ->
                            case Rest of
                                <<Chunk:N/binary, "\r\n", Rest2/binary>> -> dechunk(Rest2, [Chunk | Acc]);
                                _ -> more
                            end;
                        _ -> {done, iolist_to_binary(lists:reverse(Acc))}
                    end;
                [_] -> more
            end
    end.

%% @doc The first non-empty line of a body, trimmed and capped: the server's
%% one-line reason for a refused upgrade.
-spec body_line(Body) -> binary() when Body :: binary().
body_line(Body) ->
    Lines = [string:trim(L) || L <- binary:split(Body, [<<"\n">>, <<"\r">>], [global])],
    case [L || L <- Lines, L =/= <<>>] of
        [] -> <<>>;
        [First | _] when byte_size(First) > ?MAX_BODY_LINE -> binary:part(First, 0, ?MAX_BODY_LINE);
        [First | _] -> First
    end.

%%% FRAMES (PURE) %%%

%% @doc Encode one frame. `MaskKey' is 4 bytes for a client frame (the
%% payload is masked) or `none' (a server frame, for tests).
-spec encode_frame(Op, Payload, Fin, MaskKey) -> iodata()
    when Op :: opcode(), Payload :: iodata(), Fin :: boolean(), MaskKey :: <<_:32>> | none.
encode_frame(Op, Payload0, Fin, Mask) ->
    Payload = iolist_to_binary(Payload0),
    Len = byte_size(Payload),
    FinBit = case Fin of true -> 1; false -> 0 end,
    LenBits = if
                  Len < 126 -> <<Len:7>>;
                  Len < 65536 -> <<126:7, Len:16>>;
                  true -> <<127:7, Len:64>>
              end,
    case Mask of
        none ->
            [<<FinBit:1, 0:3, (opcode(Op)):4, 0:1, LenBits/bits>>, Payload];
        <<_:32>> ->
            [<<FinBit:1, 0:3, (opcode(Op)):4, 1:1, LenBits/bits, Mask/binary>>, mask(Payload, Mask)]
    end.

%% XOR with the key repeated over the payload (crypto:exor is native code).
mask(<<>>, _Key) -> <<>>;
mask(Payload, Key) ->
    Len = byte_size(Payload),
    Stream = binary:part(binary:copy(Key, (Len + 3) div 4), 0, Len),
    crypto:exor(Payload, Stream).

opcode(continuation) -> 0;
opcode(text) -> 1;
opcode(binary) -> 2;
opcode(close) -> 8;
opcode(ping) -> 9;
opcode(pong) -> 10.

op_name(0) -> continuation;
op_name(1) -> text;
op_name(2) -> binary;
op_name(8) -> close;
op_name(9) -> ping;
op_name(10) -> pong;
op_name(_) -> undefined.

is_control(Op) -> Op =:= close orelse Op =:= ping orelse Op =:= pong.

%% @doc Decode one frame from the front of `Buf'. Header errors are found as
%% soon as the header is in, and a length above `MaxPayload' is refused
%% before its payload is read, so a buffer never grows past one allowed frame.
-spec decode_frame(Buf, MaxPayload) -> {ok, Frame, Rest} | more | {error, proto_error()}
    when Buf :: binary(), MaxPayload :: non_neg_integer(), Frame :: frame(), Rest :: binary().
decode_frame(<<Fin:1, Rsv:3, Opc:4, M:1, Len7:7, Rest/binary>>, Max) ->
    Op = op_name(Opc),
    if
        Rsv =/= 0 -> {error, {protocol, reserved_bits}};
        Op =:= undefined -> {error, {protocol, {bad_opcode, Opc}}};
        true ->
            Control = is_control(Op),
            if
                Control, Fin =:= 0 -> {error, {protocol, fragmented_control}};
                Control, Len7 > 125 -> {error, {protocol, control_too_long}};
                true -> frame_length(Fin =:= 1, Op, M =:= 1, Len7, Rest, Max)
            end
    end;
decode_frame(_, _) ->
    more.

frame_length(Fin, Op, Masked, 126, <<Len:16, Rest/binary>>, Max) ->
    frame_body(Fin, Op, Masked, Len, Rest, Max);
frame_length(_Fin, _Op, _Masked, 127, <<1:1, _:63, _/binary>>, _Max) ->
    {error, {protocol, bad_length}};
frame_length(Fin, Op, Masked, 127, <<Len:64, Rest/binary>>, Max) ->
    frame_body(Fin, Op, Masked, Len, Rest, Max);
frame_length(_Fin, _Op, _Masked, Len7, _Rest, _Max) when Len7 >= 126 ->
    more;
frame_length(Fin, Op, Masked, Len, Rest, Max) ->
    frame_body(Fin, Op, Masked, Len, Rest, Max).

frame_body(_Fin, _Op, _Masked, Len, _Rest, Max) when Len > Max ->
    {error, {too_big, Len}};
frame_body(Fin, Op, true, Len, Buf, _Max) ->
    case Buf of
        <<Key:4/binary, Payload:Len/binary, Rest/binary>> ->
            {ok, #{fin => Fin, op => Op, payload => mask(Payload, Key), masked => true}, Rest};
        _ -> more
    end;
frame_body(Fin, Op, false, Len, Buf, _Max) ->
    case Buf of
        <<Payload:Len/binary, Rest/binary>> ->
            {ok, #{fin => Fin, op => Op, payload => Payload, masked => false}, Rest};
        _ -> more
    end.

%% @doc Add a decoded frame to the message being assembled. Control frames
%% may arrive between the fragments of a message and pass straight through.
-spec assemble(Frame, Assembly, MaxMessage) ->
          {message, text | binary, binary(), assembly()}
        | {control, close | ping | pong, binary(), assembly()}
        | {more, assembly()}
        | {error, proto_error()}
    when Frame :: frame(), Assembly :: assembly(), MaxMessage :: non_neg_integer().
assemble(#{op := Op, payload := P}, Asm, _Max) when Op =:= close; Op =:= ping; Op =:= pong ->
    {control, Op, P, Asm};
assemble(#{op := continuation}, none, _Max) ->
    {error, {protocol, unexpected_continuation}};
assemble(#{op := continuation, fin := Fin, payload := P}, {Type, Size, Parts}, Max) ->
    Size1 = Size + byte_size(P),
    if
        Size1 > Max -> {error, {too_big, Size1}};
        Fin -> complete(Type, iolist_to_binary(lists:reverse(Parts, [P])));
        true -> {more, {Type, Size1, [P | Parts]}}
    end;
assemble(#{op := _Data}, {_, _, _}, _Max) ->
    {error, {protocol, expected_continuation}};
assemble(#{op := Type, fin := true, payload := P}, none, _Max) ->
    complete(Type, P);
assemble(#{op := Type, fin := false, payload := P}, none, _Max) ->
    {more, {Type, byte_size(P), [P]}}.

complete(text, Msg) ->
    case unicode:characters_to_binary(Msg, utf8, utf8) of
        Msg -> {message, text, Msg, none};
        _ -> {error, invalid_utf8}
    end;
complete(binary, Msg) ->
    {message, binary, Msg, none}.

%% @doc Split a message into `{Opcode, Fin, Chunk}' frames of at most
%% `FragSize' bytes (one frame when it fits).
-spec fragment(Type, Message, FragSize) -> [{opcode(), Fin :: boolean(), Chunk :: binary()}]
    when Type :: text | binary, Message :: binary(), FragSize :: pos_integer().
fragment(Type, Bin, FragSize) when byte_size(Bin) =< FragSize ->
    [{Type, true, Bin}];
fragment(Type, Bin, FragSize) ->
    <<First:FragSize/binary, Rest/binary>> = Bin,
    [{Type, false, First} | fragment_rest(Rest, FragSize)].

fragment_rest(Bin, FragSize) when byte_size(Bin) =< FragSize ->
    [{continuation, true, Bin}];
fragment_rest(Bin, FragSize) ->
    <<Chunk:FragSize/binary, Rest/binary>> = Bin,
    [{continuation, false, Chunk} | fragment_rest(Rest, FragSize)].

%% @doc A close frame's payload; the reason is cut to fit the 125-byte
%% limit of control frames without splitting a UTF-8 sequence.
-spec close_payload(Code, Reason) -> binary() when Code :: 1000..4999, Reason :: binary().
close_payload(Code, Reason) ->
    <<Code:16, (utf8_prefix(Reason, 123))/binary>>.

utf8_prefix(Bin, Max) when byte_size(Bin) =< Max -> Bin;
utf8_prefix(Bin, Max) ->
    <<Head:Max/binary, _/binary>> = Bin,
    case unicode:characters_to_binary(Head) of
        {incomplete, Good, _} -> Good;
        {error, Good, _} -> Good;
        Good -> Good
    end.

%% @doc Parse a received close payload: `{ok, 1005, <<>>}' when it is
%% empty; codes that may not be sent on the wire and non-UTF-8 reasons are
%% protocol errors.
-spec parse_close(Payload) -> {ok, Code, Reason} | {error, proto_error()}
    when Payload :: binary(), Code :: non_neg_integer(), Reason :: binary().
parse_close(<<>>) -> {ok, 1005, <<>>};
parse_close(<<_>>) -> {error, {protocol, bad_close_payload}};
parse_close(<<Code:16, Reason/binary>>) ->
    Valid = (Code >= 1000 andalso Code =< 1003) orelse (Code >= 1007 andalso Code =< 1014)
            orelse (Code >= 3000 andalso Code =< 4999),
    case Valid of
        false -> {error, {protocol, {bad_close_code, Code}}};
        true ->
            case unicode:characters_to_binary(Reason, utf8, utf8) of
                Reason -> {ok, Code, Reason};
                _ -> {error, invalid_utf8}
            end
    end.

%% @doc The close code for a receive error.
-spec close_code(Error) -> 1002 | 1007 | 1009 | 1011 when Error :: proto_error() | term().
close_code({protocol, _}) -> 1002;
close_code(invalid_utf8) -> 1007;
close_code({too_big, _}) -> 1009;
close_code(_) -> 1011.
