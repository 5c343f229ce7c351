%%% @doc Files of a release: read from the release directory or from a
%%% release package not yet unpacked, and Erlang terms read from their bytes
%%% (errors name the file and the line).
-module(beamdeck_agent_release_files).

-export([read/2, tar_files/2, consult_bin/1]).

-type source() :: dir | {package, file:filename()}.
-export_type([source/0]).

%%% FILES %%%

%% @doc The bytes of `Path' in the source (a file, or a member of the
%% package), with the label that names it in errors.
-spec read(Source, Path) -> {ok, binary(), string()} | {error, atom(), binary(), string()}
    when Source :: source(), Path :: string().
read(dir, Path) ->
    case file:read_file(Path) of
        {ok, Bin} -> {ok, Bin, Path};
        {error, enoent} -> {error, missing_file, beamdeck_agent_terms:fmt("~ts: no such file", [Path]), Path};
        {error, R} -> {error, missing_file, beamdeck_agent_terms:fmt("~ts: ~ts", [Path, file:format_error(R)]), Path}
    end;
read({package, Tar}, Path) ->
    Label = Tar ++ ":" ++ Path,
    case tar_files(Tar, [Path]) of
        {ok, #{Path := Bin}} -> {ok, Bin, Label};
        {ok, _} -> {error, missing_file, beamdeck_agent_terms:fmt("~ts: not in the package", [Label]), Label};
        {error, Why} -> {error, bad_package, beamdeck_agent_terms:fmt("~ts: ~ts", [Label, Why]), Label}
    end.

%% @doc The named members of a compressed tar, by name.
-spec tar_files(Tar, Names) -> {ok, #{string() => binary()}} | {error, binary()}
    when Tar :: file:filename(), Names :: [string()].
tar_files(Tar, Names) ->
    case erl_tar:extract(Tar, [memory, compressed, {files, Names}]) of
        {ok, List} -> {ok, maps:from_list(List)};
        {error, Reason} -> {error, unicode:characters_to_binary(erl_tar:format_error(Reason))}
    end.

%% @doc The terms in UTF-8 text, like `file:consult/1' on bytes.
-spec consult_bin(Bytes) -> {ok, [term()]} | {error, binary()} when Bytes :: binary().
consult_bin(Bin) ->
    case unicode:characters_to_list(Bin) of
        Text when is_list(Text) -> consult_text(Text, []);
        _ -> {error, <<"not UTF-8 text">>}
    end.

consult_text(Text, Acc) ->
    scan(erl_scan:tokens([], Text, 1), Acc).

scan({done, {ok, Tokens, End}, Rest}, Acc) ->
    case erl_parse:parse_term(Tokens) of
        {ok, Term} -> scan(erl_scan:tokens([], Rest, End), [Term | Acc]);
        {error, {Line, Mod, Msg}} -> {error, beamdeck_agent_terms:fmt("line ~p: ~ts", [Line, Mod:format_error(Msg)])}
    end;
scan({done, {eof, _}, _}, Acc) -> {ok, lists:reverse(Acc)};
scan({done, {error, {Line, Mod, Msg}, _}, _}, _Acc) ->
    {error, beamdeck_agent_terms:fmt("line ~p: ~ts", [Line, Mod:format_error(Msg)])};
%% The text ended inside a term (or right after its final dot): tell the
%% scanner so.
scan({more, Cont}, Acc) ->
    case erl_scan:tokens(Cont, eof, 1) of
        {more, _} -> {error, <<"unterminated term (missing '.')">>};
        Done -> scan(Done, Acc)
    end.

