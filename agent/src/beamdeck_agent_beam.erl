%%% @doc The chunks of a .beam file that loop detection needs, decoded
%%% here rather than by the `compiler' application (a production release
%%% usually ships without it) and without `debug_info' (stripped builds):
%%% the atom table (`AtU8', or `Atom' in old beams), the import, export and
%%% local function tables (`ImpT', `ExpT', `LocT'), the line table (`Line',
%%% when the module was compiled with line information) and the raw `Code'
%%% chunk, which beamdeck_agent_beam_code decodes. beam_lib only splits the
%%% IFF container into chunks.
-module(beamdeck_agent_beam).

-export([read/1, compact/1]).

-type func() :: {atom(), arity(), Label :: non_neg_integer()}.
-type chunks() :: #{module := module(), atoms := tuple(), imports := tuple(),
                    exports := [func()], locals := [func()], lines := tuple(),
                    code := binary()}.
-type compact() :: {u | i | a | x | y | f | h | z, integer()}.
-export_type([chunks/0, compact/0]).

-define(IDS, ["AtU8", "Atom", "Code", "ImpT", "ExpT", "LocT", "Line"]).

%% @doc The decoded chunks of `Beam' (a .beam file's bytes). `atoms' and
%% `imports' are tuples indexed like the Code chunk indexes them (atom 1
%% first; import 0 at element 1); `lines' holds the line of each line item
%% (item 1 first), `null' where the item has no line.
-spec read(Beam) -> {ok, chunks()} | {error, binary()} when Beam :: binary().
read(Beam) ->
    case beam_lib:chunks(Beam, ?IDS, [allow_missing_chunks]) of
        {ok, {Module, Chunks}} ->
            try decode(Module, maps:from_list(Chunks))
            catch error:_ -> {error, beamdeck_agent_terms:fmt("~ts: malformed beam chunks", [Module])}
            end;
        {error, beam_lib, Reason} ->
            {error, beamdeck_agent_terms:fmt("not a beam file: ~0tp", [Reason])}
    end.

decode(Module, C) ->
    Atoms = case {maps:get("AtU8", C), maps:get("Atom", C)} of
                {<<_/binary>> = A8, _} -> atoms(A8, utf8);
                {_, <<_/binary>> = A1} -> atoms(A1, latin1);
                _ -> error(no_atoms)
            end,
    case maps:get("Code", C) of
        <<_/binary>> = Code ->
            {ok, #{module => Module, atoms => Atoms, code => Code,
                   imports => list_to_tuple(imports(binary_or_empty(maps:get("ImpT", C)), Atoms)),
                   exports => funcs(binary_or_empty(maps:get("ExpT", C)), Atoms),
                   locals => funcs(binary_or_empty(maps:get("LocT", C)), Atoms),
                   lines => lines(maps:get("Line", C))}};
        _ -> {error, beamdeck_agent_terms:fmt("~ts has no Code chunk", [Module])}
    end.

binary_or_empty(<<_/binary>> = B) -> B;
binary_or_empty(_) -> <<0:32>>.

%% A negative count (OTP 28 and later) means the lengths are in the compact
%% encoding, so an atom may be longer than 255 bytes.
atoms(<<Count:32/signed, Rest/binary>>, Enc) when Count >= 0 ->
    list_to_tuple(short_atoms(Count, Rest, Enc));
atoms(<<Count:32/signed, Rest/binary>>, Enc) ->
    list_to_tuple(long_atoms(-Count, Rest, Enc)).

short_atoms(0, _, _) -> [];
short_atoms(N, <<Len, Name:Len/binary, Rest/binary>>, Enc) ->
    [binary_to_atom(Name, Enc) | short_atoms(N - 1, Rest, Enc)].

long_atoms(0, _, _) -> [];
long_atoms(N, Bin, Enc) ->
    {{u, Len}, Rest0} = compact(Bin),
    <<Name:Len/binary, Rest/binary>> = Rest0,
    [binary_to_atom(Name, Enc) | long_atoms(N - 1, Rest, Enc)].

imports(<<_Count:32, Rest/binary>>, Atoms) ->
    [{element(M, Atoms), element(F, Atoms), A} || <<M:32, F:32, A:32>> <= Rest].

funcs(<<_Count:32, Rest/binary>>, Atoms) ->
    [{element(F, Atoms), A, L} || <<F:32, A:32, L:32>> <= Rest].

%% Line items: `i' tags are lines in the current file, `a' tags switch the
%% file (only lines are needed here). Item 0 is "no location". A chunk this
%% reader does not understand gives no lines, never an error: lines are
%% only shown to the operator.
lines(<<_Ver:32, _Flags:32, _NumInstrs:32, NumItems:32, _NumNames:32, Items/binary>>) ->
    try list_to_tuple(line_items(NumItems, Items))
    catch error:_ -> {}
    end;
lines(_) -> {}.

line_items(0, _) -> [];
line_items(N, Bin) ->
    case compact(Bin) of
        {{i, Line}, Rest} -> [line_or_null(Line) | line_items(N - 1, Rest)];
        {{a, _File}, Rest} -> line_items(N, Rest)
    end.

line_or_null(L) when L > 0 -> L;
line_or_null(_) -> null.

%% @doc One operand in the compact term encoding: the low three bits of the
%% first byte are the tag; the value is in the high four bits (bit 3
%% clear), in 11 bits over two bytes (bits 3 set, 4 clear), or in 2-8
%% following bytes, more when the length itself is encoded. Extended (`z')
%% operands are returned with their sub-tag; the caller reads what follows.
-spec compact(Bin) -> {compact(), Rest :: binary()} when Bin :: binary().
compact(<<B, Rest/binary>>) ->
    Tag = tag(B band 7),
    if
        B band 16#08 =:= 0 ->
            {{Tag, B bsr 4}, Rest};
        B band 16#10 =:= 0 ->
            <<Low, Rest1/binary>> = Rest,
            {{Tag, ((B bsr 5) bsl 8) bor Low}, Rest1};
        B bsr 5 < 7 ->
            long(Tag, (B bsr 5) + 2, Rest);
        true ->
            {{u, N}, Rest1} = compact(Rest),
            long(Tag, N + 9, Rest1)
    end.

long(i, Bytes, Bin) ->
    <<V:Bytes/signed-unit:8, Rest/binary>> = Bin,
    {{i, V}, Rest};
long(Tag, Bytes, Bin) ->
    <<V:Bytes/unsigned-unit:8, Rest/binary>> = Bin,
    {{Tag, V}, Rest}.

tag(0) -> u;
tag(1) -> i;
tag(2) -> a;
tag(3) -> x;
tag(4) -> y;
tag(5) -> f;
tag(6) -> h;
tag(7) -> z.

