%%% @doc The WebSocket opening handshake (RFC 6455 section 4), pure: the
%%% key, the upgrade request, the response head and a refused upgrade's
%%% body. No socket here; beamdeck_agent_ws does the reading and writing.
-module(beamdeck_agent_ws_handshake).

-export([new_key/0, host_header/3, handshake_request/3, parse_response/1, check_upgrade/2,
         body_complete/2, body_line/1, max_body_bytes/0]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([accept_key/1]).
-endif.

-define(GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").
-define(MAX_HEADER_BYTES, 16384).
-define(MAX_BODY_BYTES, 4096).
-define(MAX_BODY_LINE, 300).

%% @doc How much of a refused upgrade's body is read at most.
-spec max_body_bytes() -> pos_integer().
max_body_bytes() -> ?MAX_BODY_BYTES.


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

