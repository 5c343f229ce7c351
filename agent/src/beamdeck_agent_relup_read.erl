%%% @doc Reading relup files: where `release_handler' finds the script from
%%% one release to another, the shape check of a relup file, and a low-level
%%% script as the wire JSON (one object per instruction).
%%%
%%% Bad or missing files are errors that name the file and the problem.
%%% Nothing here changes a file or the node.
-module(beamdeck_agent_relup_read).

-export([locate/3, read_relup/1, relup_term/2, script_json/1, script_json/2, instruction_json/1,
         purge_json/1, timeout_json/1, mods/1]).

-type err() :: {error, atom(), binary()}.

%%% LOCATING THE SCRIPT %%%

%% @doc Find the script `release_handler' runs from `From' to `To': first
%% `RelDir/To/relup' (its upgrade section, keyed by From), else
%% `RelDir/From/relup' (its downgrade section, keyed by To). The original
%% script is read from the `.beamdeck-orig' copy when beamdeck rewrote the
%% relup; `on_disk' is what the file holds now.
-spec locate(RelDir, From, To) -> {ok, map()} | err()
    when RelDir :: string(), From :: string(), To :: string().
locate(RelDir, From, To) ->
    UpFile = filename:join([RelDir, To, "relup"]),
    DownFile = filename:join([RelDir, From, "relup"]),
    case section(UpFile, To, up, From) of
        {ok, Loc} -> {ok, Loc#{direction => up}};
        {error, missing_file, _} -> locate_down(DownFile, From, To, UpFile, "does not exist");
        {error, no_relup, _} -> locate_down(DownFile, From, To, UpFile, "has no upgrade from " ++ From);
        {error, _, _} = E -> E
    end.

locate_down(DownFile, From, To, UpFile, UpWhy) ->
    case section(DownFile, From, down, To) of
        {ok, Loc} -> {ok, Loc#{direction => down}};
        {error, bad_relup, _} = E -> E;
        {error, _, DownWhy} ->
            {error, no_relup, beamdeck_agent_terms:fmt("no relup from ~ts to ~ts: ~ts ~ts, and ~ts",
                                  [From, To, UpFile, UpWhy, DownWhy])}
    end.

section(File, FileVsn, Section, Key) ->
    case read_relup(File) of
        {ok, {FileVsn, Ups, Downs}} ->
            Entries = case Section of up -> Ups; down -> Downs end,
            case lists:keyfind(Key, 1, Entries) of
                {Key, Descr, OnDisk} ->
                    Orig = beamdeck_agent_relup:orig_file(File),
                    {Script, Rewritten} = original_script(Orig, FileVsn, Section, Key, OnDisk),
                    {ok, #{relup_file => File, section => Section, script => Script,
                           on_disk => OnDisk, descr => Descr, rewritten_on_disk => Rewritten}};
                false ->
                    {error, no_relup, beamdeck_agent_terms:fmt("~ts has no ~ts entry for ~ts",
                                          [File, section_word(Section), Key])}
            end;
        {ok, {Other, _, _}} ->
            {error, bad_relup, beamdeck_agent_terms:fmt("~ts: the relup is for version ~ts, not ~ts", [File, Other, FileVsn])};
        {error, _, _} = E -> E
    end.

section_word(up) -> "upgrade";
section_word(down) -> "downgrade".

%% The copy kept before beamdeck's first rewrite is the original, when it
%% still holds this entry; else the file on disk is.
original_script(Orig, FileVsn, Section, Key, OnDisk) ->
    case filelib:is_regular(Orig) andalso read_relup(Orig) of
        {ok, {FileVsn, Ups, Downs}} ->
            Entries = case Section of up -> Ups; down -> Downs end,
            case lists:keyfind(Key, 1, Entries) of
                {Key, _, Script} -> {Script, Script =/= OnDisk};
                false -> {OnDisk, false}
            end;
        _ -> {OnDisk, false}
    end.

%% @doc Read and check the shape of a relup file:
%% `{Vsn, [{UpFromVsn, Descr, Script}], [{DownToVsn, Descr, Script}]}'.
-spec read_relup(File) -> {ok, {string(), list(), list()}} | err() when File :: string().
read_relup(File) ->
    relup_term(File, file:consult(File)).

%% @doc Check the shape of a relup's terms as `file:consult/1' (or a
%% package's bytes) gave them; `File' labels the errors.
-spec relup_term(File, Consulted) -> {ok, {string(), list(), list()}} | err()
    when File :: string(), Consulted :: {ok, [term()]} | {error, term()}.
relup_term(File, {ok, [{Vsn, Ups, Downs}]}) when is_list(Vsn), is_list(Ups), is_list(Downs) ->
    case [E || E <- Ups ++ Downs, not valid_entry(E)] of
        [] -> {ok, {Vsn, Ups, Downs}};
        [Bad | _] ->
            {error, bad_relup, beamdeck_agent_terms:fmt("~ts: malformed entry ~ts (expected {Vsn, Descr, [Instruction]})",
                                   [File, cap(Bad)])}
    end;
relup_term(File, {ok, Terms}) ->
    {error, bad_relup, beamdeck_agent_terms:fmt("~ts: expected one term {Vsn, Ups, Downs}, found ~ts",
                           [File, cap(Terms)])};
relup_term(File, {error, enoent}) ->
    {error, missing_file, beamdeck_agent_terms:fmt("~ts: no such file", [File])};
relup_term(File, {error, {Line, Mod, Term}}) when is_integer(Line) ->
    {error, bad_relup, beamdeck_agent_terms:fmt("~ts: line ~b: ~ts", [File, Line, Mod:format_error(Term)])};
relup_term(File, {error, Reason}) when is_atom(Reason) ->
    {error, bad_relup, beamdeck_agent_terms:fmt("~ts: ~ts", [File, file:format_error(Reason)])};
relup_term(File, {error, Reason}) ->
    {error, bad_relup, beamdeck_agent_terms:fmt("~ts: ~ts", [File, cap(Reason)])}.

valid_entry({V, _Descr, Script}) -> is_list(V) andalso is_list(Script);
valid_entry(_) -> false.

%% @doc `brutal_purge' → `brutal', `soft_purge' → `soft'.
-spec purge_json(Purge) -> binary() when Purge :: term().
purge_json(brutal_purge) -> <<"brutal">>;
purge_json(soft_purge) -> <<"soft">>;
purge_json(Other) -> text(Other).

%% @doc A suspend or update timeout as JSON (`default', `infinity' or ms).
-spec timeout_json(Timeout) -> integer() | atom() | binary() when Timeout :: term().
timeout_json(T) when is_integer(T) -> T;
timeout_json(T) when is_atom(T) -> T;
timeout_json(T) -> text(T).

%% @doc The module names of an instruction's list (anything else dropped).
-spec mods(List) -> [module()] when List :: term().
mods(L) when is_list(L) -> [M || M <- L, is_atom(M)];
mods(_) -> [].

%%% LOW-LEVEL SCRIPTS %%%

%% @doc A low-level relup script as JSON, one object per instruction.
-spec script_json(Script) -> [map()] when Script :: list().
script_json(Script) -> [instruction_json(I) || I <- Script].

%% @doc Like script_json/1, but `null' for a script longer than `Max'
%% instructions (an OTP upgrade can have thousands): frames stay small, and
%% the full script is one `releases' request away.
-spec script_json(Script, Max) -> [map()] | null when Script :: list(), Max :: pos_integer().
script_json(Script, Max) when length(Script) =< Max -> script_json(Script);
script_json(_Script, _Max) -> null.

%% @doc One low-level instruction: `op', its fields, and `text' (as printed).
-spec instruction_json(Instruction) -> map() when Instruction :: term().
instruction_json(I) -> maps:put(text, text(I), instr(I)).

instr({load_object_code, {App, AppVsn, Mods}}) ->
    #{op => load_object_code, app => App, appVsn => maybe_bin(AppVsn), modules => mods(Mods)};
instr(point_of_no_return) -> #{op => point_of_no_return};
instr({load, {M, Pre, Post}}) ->
    #{op => load, module => M, prePurge => purge_json(Pre), postPurge => purge_json(Post)};
instr({remove, {M, Pre, Post}}) ->
    #{op => remove, module => M, prePurge => purge_json(Pre), postPurge => purge_json(Post)};
instr({purge, Mods}) -> #{op => purge, modules => mods(Mods)};
instr({suspend, Specs}) when is_list(Specs) ->
    #{op => suspend, modules => [mod_of(S) || S <- Specs],
      timeouts => maps:from_list([{M, timeout_json(T)} || {M, T} <- Specs, is_atom(M)])};
instr({resume, Mods}) -> #{op => resume, modules => mods(Mods)};
instr({code_change, Mods}) -> instr({code_change, up, Mods});
instr({code_change, Mode, Mods}) when is_list(Mods) ->
    #{op => code_change, mode => Mode,
      modules => [#{module => M, extra => printed(E)} || {M, E} <- Mods, is_atom(M)]};
instr({stop, Mods}) -> #{op => stop, modules => mods(Mods)};
instr({start, Mods}) -> #{op => start, modules => mods(Mods)};
instr({apply, {M, F, Args}}) when is_atom(M), is_atom(F), is_list(Args) ->
    #{op => apply, mfa => beamdeck_agent_terms:mfa({M, F, Args}), args => printed(Args)};
instr({sync_nodes, Id, Nodes}) -> #{op => sync_nodes, id => text(Id), nodes => text(Nodes)};
instr(restart_new_emulator) -> #{op => restart_new_emulator};
instr(restart_emulator) -> #{op => restart_emulator};
instr(_) -> #{op => unknown}.

mod_of({M, _}) -> M;
mod_of(M) -> M.

%%% HELPERS %%%

maybe_bin(undefined) -> null;
maybe_bin(S) -> unicode:characters_to_binary(S).

text(T) -> beamdeck_agent_terms:text(T, 2000).

printed(T) -> beamdeck_agent_terms:printed(T, 2000).

cap(T) -> beamdeck_agent_terms:text(T, 300).

