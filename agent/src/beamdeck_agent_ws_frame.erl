%%% @doc WebSocket frames (RFC 6455 section 5), pure: encoding (masked
%%% client frames), decoding with the client's checks (no masked server
%%% frame, no reserved bits or unknown opcodes, short unfragmented control
%%% frames, valid UTF-8 text), message assembly, fragmentation and close
%%% payloads. No socket here; beamdeck_agent_ws does the reading and writing.
-module(beamdeck_agent_ws_frame).

-export([encode_frame/4, decode_frame/2, assemble/3, fragment/3,
         close_payload/2, parse_close/1, close_code/1]).

-type opcode() :: continuation | text | binary | close | ping | pong.
-type frame() :: #{fin := boolean(), op := opcode(), payload := binary(), masked := boolean()}.
-type assembly() :: none | {text | binary, Size :: non_neg_integer(), Parts :: [binary()]}.
-type event() :: {text, binary()} | {binary, binary()} | {ping, binary()} | {pong, binary()}
               | {close, Code :: non_neg_integer(), Reason :: binary()}.
-type proto_error() :: {protocol, atom() | {atom(), term()}} | {too_big, non_neg_integer()}
                     | invalid_utf8.
-export_type([opcode/0, frame/0, assembly/0, event/0, proto_error/0]).


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

