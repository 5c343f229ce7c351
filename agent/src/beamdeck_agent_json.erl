%%% @doc JSON for the agent's wire frames (RFC 8259).
%%%
%%% OTP 27+ ships a `json' module; it is used when it exists. OTP 25/26
%%% have none, so this module carries its own codec. The results are the
%%% same on every OTP (the same EUnit runs on 25, 27 and 29): `json' does
%%% the work, and the cases where it differs from the rules below are kept
%%% to this module's own code — maps, lists and strings are encoded here
%%% (`json' would raise `unsupported_type', accept float keys and reject
%%% bytes that are not UTF-8), and any input `json:decode' rejects (or
%%% decodes with trailing data) is decoded again by the own decoder, which
%%% gives the error with its offset, or the U+FFFD for a lone surrogate.
%%%
%%% Encoding: maps (atom, binary or integer keys), lists, UTF-8 binaries,
%%% integers (beyond +-(2^53-1) as decimal strings, so JavaScript keeps every
%%% digit), floats, `true'/`false'/`null', any other atom as its text. Bytes
%%% that are not UTF-8 become U+FFFD rather than failing the whole frame.
%%%
%%% Decoding: objects as maps with binary keys (the last duplicate key wins),
%%% `null' as the atom `null', integers as integers, numbers with a fraction or
%%% exponent as floats. Malformed input gives `{error, Reason}'; nesting
%%% deeper than the depth limit (default 256) is refused.
%%%
%%% Size (over 400 lines, on purpose): one codec, both directions; the OTP 27+
%%% dispatch and the fallback must give the same results, so they are kept
%%% side by side.
-module(beamdeck_agent_json).

-export([encode/1, decode/1]).
%% Which backend runs: asked of a running release too (the OTP matrix's
%% mix release test checks a node on OTP 27 takes `json').
-export([backend/0]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([decode/2]).
-endif.

-define(MAX_SAFE_INT, 9007199254740991).
-define(DEFAULT_MAX_DEPTH, 256).
-define(REPLACEMENT, 16#FFFD).

-type json() :: beamdeck_agent_terms:json().
-type decode_error() :: unexpected_end
                      | {unexpected_byte, Offset :: non_neg_integer()}
                      | {invalid_number, Offset :: non_neg_integer()}
                      | {invalid_escape, Offset :: non_neg_integer()}
                      | {invalid_utf8, Offset :: non_neg_integer()}
                      | {control_character, Offset :: non_neg_integer()}
                      | {trailing_data, Offset :: non_neg_integer()}
                      | {too_deep, MaxDepth :: pos_integer()}
                      | not_binary.
-export_type([decode_error/0]).

%%% ENCODING %%%

%% @doc Encode a term as JSON text. Raises `error({unsupported_json_term, T})'
%% for terms JSON cannot hold (tuples, pids, funs...): callers convert those
%% with `beamdeck_agent_terms' first.
-spec encode(Term) -> iodata() when Term :: term().
encode(Term) ->
    case otp_json() of
        true -> json:encode(Term, fun otp_encoder/2);
        false -> enc(Term)
    end.

%% The OTP 27 encoder, adjusted to the wire rules that `json' does not know.
otp_encoder(I, _Encode) when is_integer(I), (I > ?MAX_SAFE_INT orelse I < -?MAX_SAFE_INT) ->
    string(integer_to_binary(I));
otp_encoder(B, _Encode) when is_binary(B) ->
    string(B);
otp_encoder(L, Encode) when is_list(L) ->
    otp_array(L, Encode);
otp_encoder(M, Encode) when is_map(M) ->
    otp_object(maps:to_list(M), Encode);
otp_encoder(V, Encode) when is_atom(V); is_number(V) ->
    json:encode_value(V, Encode);
otp_encoder(Other, _Encode) ->
    error({unsupported_json_term, Other}).

otp_array([], _Encode) -> <<"[]">>;
otp_array([H | T], Encode) -> [$[, Encode(H, Encode) | otp_array_rest(T, Encode)].

otp_array_rest([], _Encode) -> [$]];
otp_array_rest([H | T], Encode) -> [$,, Encode(H, Encode) | otp_array_rest(T, Encode)];
otp_array_rest(Tail, _Encode) -> error({unsupported_json_term, {improper_list_tail, Tail}}).

otp_object([], _Encode) -> <<"{}">>;
otp_object([{K, V} | T], Encode) ->
    [${, key(K), $:, Encode(V, Encode),
     [[$,, key(K2), $:, Encode(V2, Encode)] || {K2, V2} <- T], $}].

enc(null) -> <<"null">>;
enc(true) -> <<"true">>;
enc(false) -> <<"false">>;
enc(A) when is_atom(A) -> string(atom_to_binary(A, utf8));
enc(B) when is_binary(B) -> string(B);
enc(I) when is_integer(I), I =< ?MAX_SAFE_INT, I >= -?MAX_SAFE_INT -> integer_to_binary(I);
enc(I) when is_integer(I) -> [$", integer_to_binary(I), $"];
enc(F) when is_float(F) -> float_to_binary(F, [short]);
enc(M) when is_map(M) -> enc_object(maps:to_list(M));
enc(L) when is_list(L) -> enc_array(L);
enc(Other) -> error({unsupported_json_term, Other}).

enc_array([]) -> <<"[]">>;
enc_array([H | T]) -> [$[, enc(H) | enc_rest(T)].

enc_rest([]) -> [$]];
enc_rest([H | T]) -> [$,, enc(H) | enc_rest(T)];
enc_rest(Tail) -> error({unsupported_json_term, {improper_list_tail, Tail}}).

enc_object([]) -> <<"{}">>;
enc_object([{K, V} | T]) ->
    [${, key(K), $:, enc(V), [[$,, key(K2), $:, enc(V2)] || {K2, V2} <- T], $}].

key(K) when is_binary(K) -> string(K);
key(K) when is_atom(K) -> string(atom_to_binary(K, utf8));
key(K) when is_integer(K) -> [$", integer_to_binary(K), $"];
key(K) -> error({unsupported_json_term, {key, K}}).

%% A JSON string. Runs of bytes that need no escaping are copied as
%% sub-binaries of the input, so long plain strings cost one slice.
string(Bin) -> [$", esc(Bin, Bin, 0, 0, []), $"].

esc(<<C, R/binary>>, Orig, Start, Len, Acc)
  when C >= 16#20, C < 16#80, C =/= $", C =/= $\\ ->
    esc(R, Orig, Start, Len + 1, Acc);
esc(<<C/utf8, R/binary>>, Orig, Start, Len, Acc) when C >= 16#80 ->
    esc(R, Orig, Start, Len + utf8_size(C), Acc);
esc(<<>>, Orig, Start, Len, Acc) ->
    lists:reverse(Acc, [binary:part(Orig, Start, Len)]);
esc(<<C, R/binary>>, Orig, Start, Len, Acc) ->
    Out = case C of
              $" -> <<"\\\"">>;
              $\\ -> <<"\\\\">>;
              $\n -> <<"\\n">>;
              $\r -> <<"\\r">>;
              $\t -> <<"\\t">>;
              $\b -> <<"\\b">>;
              $\f -> <<"\\f">>;
              _ when C < 16#20 -> [<<"\\u00">>, hex2(C)];
              _ -> <<?REPLACEMENT/utf8>>  % a byte that is not UTF-8
          end,
    Acc1 = [Out, binary:part(Orig, Start, Len) | Acc],
    esc(R, Orig, Start + Len + 1, 0, Acc1).

utf8_size(C) when C < 16#800 -> 2;
utf8_size(C) when C < 16#10000 -> 3;
utf8_size(_) -> 4.

hex2(C) ->
    <<(hexdig(C bsr 4)), (hexdig(C band 15))>>.

hexdig(N) when N < 10 -> $0 + N;
hexdig(N) -> $a + N - 10.

%%% DECODING %%%

%% @doc Decode one JSON text with the default depth limit (256).
-spec decode(Json) -> {ok, json()} | {error, decode_error()} when Json :: binary().
decode(Bin) -> decode(Bin, #{}).

%% @doc Decode one JSON text. Options: `max_depth' (nesting of arrays and
%% objects, default 256).
-spec decode(Json, Opts) -> {ok, json()} | {error, decode_error()}
    when Json :: binary(), Opts :: #{max_depth => pos_integer()}.
decode(Bin, Opts) when is_binary(Bin) ->
    MaxDepth = maps:get(max_depth, Opts, ?DEFAULT_MAX_DEPTH),
    case otp_json() of
        true -> otp_decode(Bin, MaxDepth);
        false -> own_decode(Bin, MaxDepth)
    end;
decode(_, _) ->
    {error, not_binary}.

%% `json' keeps the first of duplicate keys; the wire rule (and the server's
%% JSON.parse) is the last, hence the object callbacks. Whatever `json'
%% refuses goes to the own decoder, which says why and where.
otp_decode(Bin, MaxDepth) ->
    Decoders = #{object_push => fun(K, V, Acc) -> [{K, V} | Acc] end,
                 object_finish => fun(Acc, Old) -> {maps:from_list(lists:reverse(Acc)), Old} end},
    try json:decode(Bin, ok, Decoders) of
        {Term, ok, Rest} ->
            case {ws(Rest), depth_ok(Term, MaxDepth)} of
                {<<>>, true} -> {ok, Term};
                {<<>>, false} -> {error, {too_deep, MaxDepth}};
                _ -> own_decode(Bin, MaxDepth)
            end
    catch
        error:_ -> own_decode(Bin, MaxDepth)
    end.

depth_ok(L, D) when is_list(L) -> D >= 1 andalso lists:all(fun(E) -> depth_ok(E, D - 1) end, L);
depth_ok(M, D) when is_map(M) -> D >= 1 andalso depth_ok(maps:values(M), D);
depth_ok(_, _) -> true.

own_decode(Bin, MaxDepth) ->
    try
        {Value, Rest} = value(ws(Bin), Bin, MaxDepth),
        case ws(Rest) of
            <<>> -> {ok, Value};
            Trailing -> throw({trailing_data, offset(Bin, Trailing)})
        end
    catch
        throw:too_deep -> {error, {too_deep, MaxDepth}};
        throw:Reason -> {error, Reason}
    end.

%% Decoder functions take the remaining input and the original binary (for
%% error offsets), and return {Value, Rest}; errors are thrown.
value(<<${, R/binary>>, O, D) -> object(ws(R), O, enter(D));
value(<<$[, R/binary>>, O, D) -> array(ws(R), O, enter(D));
value(<<$", R/binary>>, O, _D) -> str(R, O);
value(<<"true", R/binary>>, _O, _D) -> {true, R};
value(<<"false", R/binary>>, _O, _D) -> {false, R};
value(<<"null", R/binary>>, _O, _D) -> {null, R};
value(<<C, _/binary>> = R, O, _D) when C =:= $-; C >= $0, C =< $9 -> number(R, O);
value(<<>>, _O, _D) -> throw(unexpected_end);
value(R, O, _D) -> unexpected(R, O).

enter(D) when D =< 0 -> throw(too_deep);
enter(D) -> D - 1.

object(<<$}, R/binary>>, _O, _D) -> {#{}, R};
object(R, O, D) -> members(R, O, D, []).

members(<<$", R/binary>>, O, D, Acc) ->
    {Key, R1} = str(R, O),
    case ws(R1) of
        <<$:, R2/binary>> ->
            {Val, R3} = value(ws(R2), O, D),
            Acc1 = [{Key, Val} | Acc],
            case ws(R3) of
                <<$,, R4/binary>> -> members(ws(R4), O, D, Acc1);
                <<$}, R4/binary>> -> {maps:from_list(lists:reverse(Acc1)), R4};
                Other -> unexpected(Other, O)
            end;
        Other -> unexpected(Other, O)
    end;
members(R, O, _D, _Acc) -> unexpected(R, O).

array(<<$], R/binary>>, _O, _D) -> {[], R};
array(R, O, D) -> elements(R, O, D, []).

elements(R, O, D, Acc) ->
    {Val, R1} = value(R, O, D),
    case ws(R1) of
        <<$,, R2/binary>> -> elements(ws(R2), O, D, [Val | Acc]);
        <<$], R2/binary>> -> {lists:reverse(Acc, [Val]), R2};
        Other -> unexpected(Other, O)
    end.

ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(R);
ws(R) -> R.

-spec unexpected(Rest :: binary(), Orig :: binary()) -> no_return().
unexpected(<<>>, _O) -> throw(unexpected_end);
unexpected(R, O) -> throw({unexpected_byte, offset(O, R)}).

offset(Orig, Rest) -> byte_size(Orig) - byte_size(Rest).

%% Numbers: the RFC 8259 grammar is checked here; the conversion is left to
%% binary_to_integer/binary_to_float.
number(R, O) ->
    Start = offset(O, R),
    {R1, N1} = case R of
                   <<$-, T/binary>> -> {T, 1};
                   _ -> {R, 0}
               end,
    {R2, N2} = int_part(R1, N1, O, Start),
    {R3, N3, Frac} = frac_part(R2, N2, O, Start),
    {R4, N4, Exp} = exp_part(R3, N3, O, Start),
    Text = binary:part(O, Start, N4),
    {to_number(Text, Frac, Exp, O, Start), R4}.

int_part(<<$0, R/binary>>, N, _O, _S) -> {R, N + 1};
int_part(<<C, _/binary>> = R, N, _O, _S) when C >= $1, C =< $9 -> digits(R, N);
int_part(_, _, _O, S) -> throw({invalid_number, S}).

frac_part(<<$., R/binary>>, N, _O, S) ->
    case R of
        <<C, _/binary>> when C >= $0, C =< $9 ->
            {R1, N1} = digits(R, N + 1),
            {R1, N1, true};
        _ -> throw({invalid_number, S})
    end;
frac_part(R, N, _O, _S) -> {R, N, false}.

exp_part(<<E, R/binary>>, N, _O, S) when E =:= $e; E =:= $E ->
    {R1, N1} = case R of
                   <<Sign, T/binary>> when Sign =:= $+; Sign =:= $- -> {T, N + 2};
                   _ -> {R, N + 1}
               end,
    case R1 of
        <<C, _/binary>> when C >= $0, C =< $9 ->
            {R2, N2} = digits(R1, N1),
            {R2, N2, true};
        _ -> throw({invalid_number, S})
    end;
exp_part(R, N, _O, _S) -> {R, N, false}.

digits(<<C, R/binary>>, N) when C >= $0, C =< $9 -> digits(R, N + 1);
digits(R, N) -> {R, N}.

to_number(Text, false, false, _O, _S) ->
    binary_to_integer(Text);
to_number(Text, Frac, _Exp, _O, S) ->
    %% binary_to_float/1 wants a fraction: "1e5" -> "1.0e5".
    Float = case Frac of
                true -> Text;
                false ->
                    [Mant, Exp] = binary:split(Text, [<<"e">>, <<"E">>]),
                    <<Mant/binary, ".0e", Exp/binary>>
            end,
    try binary_to_float(Float)
    catch error:badarg -> throw({invalid_number, S})  % out of range, e.g. 1e400
    end.

%% Strings: runs of plain bytes are sliced from the input; escapes and
%% UTF-8 validity are checked on the way.
str(R, O) -> str(R, O, offset(O, R), 0, []).

str(<<$", R/binary>>, O, Start, Len, Acc) ->
    {iolist_to_binary(lists:reverse(Acc, [binary:part(O, Start, Len)])), R};
str(<<$\\, R/binary>>, O, Start, Len, Acc) ->
    Acc1 = [binary:part(O, Start, Len) | Acc],
    {Char, R1} = escape(R, O),
    str(R1, O, offset(O, R1), 0, [Char | Acc1]);
str(<<C, R/binary>>, O, Start, Len, Acc) when C >= 16#20, C < 16#80 ->
    str(R, O, Start, Len + 1, Acc);
str(<<C/utf8, R/binary>>, O, Start, Len, Acc) when C >= 16#80 ->
    str(R, O, Start, Len + utf8_size(C), Acc);
str(<<C, _/binary>> = R, O, _Start, _Len, _Acc) when C < 16#20 ->
    throw({control_character, offset(O, R)});
str(<<>>, _O, _Start, _Len, _Acc) ->
    throw(unexpected_end);
str(R, O, _Start, _Len, _Acc) ->
    %% A truncated multi-byte sequence at the very end is still "end".
    case is_utf8_prefix(R) of
        true -> throw(unexpected_end);
        false -> throw({invalid_utf8, offset(O, R)})
    end.

is_utf8_prefix(<<C>>) when C >= 16#C2, C =< 16#F4 -> true;
is_utf8_prefix(<<C, D>>) when C >= 16#E0, C =< 16#F4, D >= 16#80, D =< 16#BF -> true;
is_utf8_prefix(<<C, D, E>>) when C >= 16#F0, C =< 16#F4, D >= 16#80, D =< 16#BF,
                                  E >= 16#80, E =< 16#BF -> true;
is_utf8_prefix(_) -> false.

escape(<<$", R/binary>>, _O) -> {<<$">>, R};
escape(<<$\\, R/binary>>, _O) -> {<<$\\>>, R};
escape(<<$/, R/binary>>, _O) -> {<<$/>>, R};
escape(<<$b, R/binary>>, _O) -> {<<$\b>>, R};
escape(<<$f, R/binary>>, _O) -> {<<$\f>>, R};
escape(<<$n, R/binary>>, _O) -> {<<$\n>>, R};
escape(<<$r, R/binary>>, _O) -> {<<$\r>>, R};
escape(<<$t, R/binary>>, _O) -> {<<$\t>>, R};
escape(<<$u, R/binary>> = R0, O) ->
    {Cp, R1} = hex4(R, O, R0),
    if
        Cp >= 16#D800, Cp =< 16#DBFF ->
            %% A high surrogate: a low one must follow to make one code point.
            case R1 of
                <<$\\, $u, R2/binary>> ->
                    {Lo, R3} = hex4(R2, O, R1),
                    if
                        Lo >= 16#DC00, Lo =< 16#DFFF ->
                            Full = 16#10000 + ((Cp - 16#D800) bsl 10) + (Lo - 16#DC00),
                            {<<Full/utf8>>, R3};
                        true ->
                            %% Lone high surrogate; the next escape stands alone.
                            {<<?REPLACEMENT/utf8>>, R1}
                    end;
                _ -> {<<?REPLACEMENT/utf8>>, R1}
            end;
        Cp >= 16#DC00, Cp =< 16#DFFF ->
            {<<?REPLACEMENT/utf8>>, R1};  % lone low surrogate
        true ->
            {<<Cp/utf8>>, R1}
    end;
escape(<<>>, _O) -> throw(unexpected_end);
escape(R, O) -> throw({invalid_escape, offset(O, R) - 1}).

hex4(<<A, B, C, D, R/binary>>, O, At) ->
    case {hexval(A), hexval(B), hexval(C), hexval(D)} of
        {HA, HB, HC, HD} when HA >= 0, HB >= 0, HC >= 0, HD >= 0 ->
            {(HA bsl 12) bor (HB bsl 8) bor (HC bsl 4) bor HD, R};
        _ -> throw({invalid_escape, offset(O, At) - 1})
    end;
hex4(R, O, At) ->
    case lists:all(fun(X) -> hexval(X) >= 0 end, binary_to_list(R)) of
        true -> throw(unexpected_end);
        false -> throw({invalid_escape, offset(O, At) - 1})
    end.

hexval(C) when C >= $0, C =< $9 -> C - $0;
hexval(C) when C >= $a, C =< $f -> C - $a + 10;
hexval(C) when C >= $A, C =< $F -> C - $A + 10;
hexval(_) -> -1.

%%% OTP 27 DETECTION %%%

%% @doc Which code encodes and decodes on this node: OTP 27's `json' module
%% (`otp_json') or the agent's own (`builtin', OTP 25 and 26).
-spec backend() -> otp_json | builtin.
backend() ->
    case otp_json() of
        true -> otp_json;
        false -> builtin
    end.

%% Cached: code:ensure_loaded/1 of a missing module asks the code server
%% (a file search) every time, too slow for every frame.
otp_json() ->
    case persistent_term:get({?MODULE, otp_json}, undefined) of
        undefined ->
            Has = code:ensure_loaded(json) =:= {module, json}
                  andalso erlang:function_exported(json, encode, 2)
                  andalso erlang:function_exported(json, decode, 1)
                  andalso erlang:function_exported(json, encode_value, 2),
            persistent_term:put({?MODULE, otp_json}, Has),
            Has;
        Has -> Has
    end.
