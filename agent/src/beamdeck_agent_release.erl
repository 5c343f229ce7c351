%%% @doc Release state and the upgrade path between two releases, read
%%% from the node's release directory (or a release package not yet
%%% unpacked) into structured data.
%%%
%%% A path is what `release_handler' would run to go from the running
%%% release to a target: the low-level script of a `relup' (found the way
%%% `release_handler' finds it: `releases/TO/relup' upgrading from the
%%% current version, else `releases/FROM/relup' downgrading to the target),
%%% and the high-level appup instructions of every application whose
%%% version differs, with the defaults that systools applies made explicit
%%% (`{load_module, M}' is brutal_purge/brutal_purge and so on).
%%%
%%% Bad or missing files are errors that name the file and the problem.
%%% Nothing here changes a file or the node.
-module(beamdeck_agent_release).

-export([rel_dir/0, root_dir/0, releases_info/0, state/1, path/2, path_json/1,
         read_relup/1, locate/3, script_json/1, script_json/2, instruction_json/1, appup_json/1,
         parse_appup/4, target_beam/2, target_beams/2, purge_json/1]).

-define(MAX_PACKAGES, 100).
-define(MAX_RELEASES, 100).
-define(HANDLER_TIMEOUT, 3000).

-type rel() :: #{name := string(), vsn := string(), status := atom(),
                 libs := [{atom(), string(), string()}], erts := string() | undefined}.
-type source() :: dir | {package, file:filename()}.
-type path() :: #{name := string(), from := string(), to := string(),
                  direction := up | down, relup_file := string(), section := up | down,
                  script := list(), on_disk := list(), descr := term(),
                  rewritten_on_disk := boolean(),
                  from_libs := list(), to_libs := list(), source := source(),
                  to_status := atom()}.
-type err() :: {error, atom(), binary()}.
-export_type([path/0, rel/0]).

%%% WHERE %%%

%% @doc The release directory `release_handler' uses: the `sasl'
%% `releases_dir' setting, else `$RELDIR', else `ROOT/releases'.
-spec rel_dir() -> string().
rel_dir() ->
    case application:get_env(sasl, releases_dir) of
        {ok, Dir} when is_list(Dir) -> Dir;
        _ ->
            case os:getenv("RELDIR") of
                false -> filename:join(root_dir(), "releases");
                Dir -> Dir
            end
    end.

%% @doc The root of the target system (library paths in RELEASES are relative to it).
-spec root_dir() -> string().
root_dir() -> code:root_dir().

%%% RELEASE STATE %%%

%% @doc The releases the node knows: statuses from `release_handler:which_releases/0'
%% (bounded; falls back to the RELEASES file, marked stale, when the handler is
%% busy or absent) and library directories from the RELEASES file.
-spec releases_info() -> #{handler := boolean(), stale := boolean(), rels := [rel()]}.
releases_info() ->
    FileRels = releases_file(),
    Handler = whereis(release_handler) =/= undefined,
    Which = case Handler of
                true -> beamdeck_agent_otp:call(fun release_handler:which_releases/0, ?HANDLER_TIMEOUT);
                false -> {error, not_running}
            end,
    case Which of
        {ok, List} when is_list(List) ->
            Rels = [merge_rel(N, V, S, FileRels) || {N, V, _Apps, S} <- List],
            #{handler => true, stale => false, rels => lists:sublist(Rels, ?MAX_RELEASES)};
        _ ->
            #{handler => Handler, stale => true, rels => lists:sublist(FileRels, ?MAX_RELEASES)}
    end.

merge_rel(Name, Vsn, Status, FileRels) ->
    case [R || #{vsn := V} = R <- FileRels, V =:= Vsn] of
        [R | _] -> R#{name => Name, status => Status};
        [] -> #{name => Name, vsn => Vsn, status => Status, libs => [], erts => undefined}
    end.

releases_file() ->
    File = filename:join(rel_dir(), "RELEASES"),
    Root = root_dir(),
    case file:consult(File) of
        {ok, [Rels]} when is_list(Rels) ->
            [#{name => N, vsn => V, erts => E, status => S,
               libs => [{A, AV, filename:absname(D, Root)} || {A, AV, D} <- Libs]}
             || {release, N, V, E, Libs, S} <- Rels];
        _ -> []
    end.

current(Rels) ->
    case [V || #{vsn := V, status := current} <- Rels] of
        [V | _] -> V;
        [] -> permanent(Rels)
    end.

permanent(Rels) ->
    case [V || #{vsn := V, status := permanent} <- Rels] of
        [V | _] -> V;
        [] -> undefined
    end.

%% @doc The `releases' request: releases and their statuses, the running
%% (`current') and `permanent' versions, release packages in the release
%% directory and the pending upgrades. With `params.vsn', also the `path'
%% from the running release to that version (see path_json/1); for the
%% running release itself when it is not permanent yet, the path it was
%% installed by (from the permanent release).
-spec state(Params) -> {ok, map()} | err() when Params :: map().
state(Params) ->
    #{handler := Handler, stale := Stale, rels := Rels} = releases_info(),
    RelDir = rel_dir(),
    Current = current(Rels),
    Packages = packages(RelDir, Rels),
    Pending = [#{vsn => bin(V), state => unpacked, package => null}
               || #{vsn := V, status := unpacked} <- Rels]
              ++ [#{vsn => V, state => package, package => P}
                  || #{vsn := V, package := P, unpacked := false} <- Packages, V =/= null],
    Base = #{handler => Handler, stale => Stale, releasesDir => bin(RelDir),
             rootDir => bin(root_dir()),
             name => case Rels of [#{name := N} | _] -> bin(N); [] -> null end,
             current => maybe_bin(Current), permanent => maybe_bin(permanent(Rels)),
             releases => [#{name => bin(N), vsn => bin(V), status => S,
                            apps => [iolist_to_binary([atom_to_binary(A, utf8), $-, AV])
                                     || {A, AV, _} <- Libs]}
                          || #{name := N, vsn := V, status := S, libs := Libs} <- Rels],
             packages => Packages, pending => Pending},
    case maps:get(<<"vsn">>, Params, null) of
        null -> {ok, Base#{path => null}};
        Vsn when is_binary(Vsn), Current =/= undefined ->
            %% The running release itself: the path it was installed by.
            {From, To} = case {binary_to_list(Vsn), permanent(Rels)} of
                             {Current, Perm} when Perm =/= Current, Perm =/= undefined -> {Perm, Current};
                             {V, _} -> {Current, V}
                         end,
            case path(From, To) of
                {ok, Path} -> {ok, Base#{path => path_json(Path)}};
                {error, _, _} = E -> E
            end;
        Vsn when is_binary(Vsn) ->
            {error, not_found, <<"no release is running (RELEASES has no current or permanent release)">>};
        _ ->
            {error, bad_request, <<"params.vsn must be a string">>}
    end.

packages(RelDir, Rels) ->
    Names = lists:usort([N || #{name := N} <- Rels]),
    Files = lists:sublist(lists:sort(filelib:wildcard("*.tar.gz", RelDir)), ?MAX_PACKAGES),
    [package_json(RelDir, F, Names, Rels) || F <- Files].

package_json(RelDir, File, Names, Rels) ->
    Pkg = lists:sublist(File, length(File) - length(".tar.gz")),
    Vsn = case [lists:nthtail(length(N) + 1, Pkg) || N <- Names, lists:prefix(N ++ "-", Pkg)] of
              [V | _] -> V;
              [] -> undefined
          end,
    Path = filename:join(RelDir, File),
    {Size, Mtime} = case file:read_file_info(Path, [{time, posix}]) of
                        {ok, Info} -> {element(2, Info), element(6, Info) * 1000};
                        _ -> {null, null}
                    end,
    #{file => bin(File), package => bin(Pkg), vsn => maybe_bin(Vsn), size => Size,
      modifiedAt => Mtime,
      unpacked => Vsn =/= undefined andalso [x || #{vsn := V} <- Rels, V =:= Vsn] =/= []}.

%%% THE PATH FROM ONE RELEASE TO ANOTHER %%%

%% @doc The upgrade (or downgrade) path from release `From' to `To': the
%% relup script (original and on disk), both releases' libraries and where
%% the target's files are (an unpacked release, or a package).
-spec path(From, To) -> {ok, path()} | err() when From :: string(), To :: string().
path(From, To) ->
    #{rels := Rels} = releases_info(),
    RelDir = rel_dir(),
    case lists:search(fun(#{vsn := V}) -> V =:= From end, Rels) of
        false -> {error, not_found, fmt("release ~ts is not installed on this node", [From])};
        {value, #{name := Name, libs := FromLibs}} ->
            case lists:search(fun(#{vsn := V}) -> V =:= To end, Rels) of
                {value, #{libs := ToLibs, status := Status}} ->
                    dir_path(RelDir, Name, From, To, FromLibs, ToLibs, Status);
                false ->
                    package_path(RelDir, Name, From, To, FromLibs)
            end
    end.

dir_path(RelDir, Name, From, To, FromLibs, ToLibs, Status) ->
    case locate(RelDir, From, To) of
        {ok, Loc} ->
            {ok, Loc#{name => Name, from => From, to => To, from_libs => FromLibs,
                      to_libs => ToLibs, source => dir, to_status => Status}};
        {error, _, _} = E -> E
    end.

package_path(RelDir, Name, From, To, FromLibs) ->
    Pkg = Name ++ "-" ++ To,
    Tar = filename:join(RelDir, Pkg ++ ".tar.gz"),
    RelFile = "releases/" ++ Pkg ++ ".rel",
    RelupFile = "releases/" ++ To ++ "/relup",
    case filelib:is_regular(Tar) of
        false ->
            {error, not_found, fmt("no release ~ts: not in ~ts/RELEASES and no package ~ts",
                                   [To, RelDir, Tar])};
        true ->
            case tar_files(Tar, [RelFile, RelupFile]) of
                {ok, #{RelFile := RelBin} = Files} ->
                    ToLibs = case consult_bin(RelBin) of
                                 {ok, [{release, _, _, Apps}]} ->
                                     [{element(1, A), element(2, A),
                                       "lib/" ++ atom_to_list(element(1, A)) ++ "-" ++ element(2, A)}
                                      || A <- Apps, is_tuple(A)];
                                 _ -> []
                             end,
                    Label = Tar ++ ":" ++ RelupFile,
                    case maps:find(RelupFile, Files) of
                        error ->
                            {error, missing_file, fmt("~ts: the package has no ~ts (no upgrade path)",
                                                      [Tar, RelupFile])};
                        {ok, RelupBin} ->
                            case relup_term(Label, consult_bin(RelupBin)) of
                                {ok, {To, Ups, _Downs}} ->
                                    case lists:keyfind(From, 1, Ups) of
                                        {From, Descr, Script} ->
                                            {ok, #{name => Name, from => From, to => To,
                                                   direction => up, relup_file => Label,
                                                   section => up, script => Script,
                                                   on_disk => Script, descr => Descr,
                                                   rewritten_on_disk => false,
                                                   from_libs => FromLibs, to_libs => ToLibs,
                                                   source => {package, Tar},
                                                   to_status => package}};
                                        false ->
                                            {error, no_relup, fmt("~ts has no upgrade from ~ts",
                                                                  [Label, From])}
                                    end;
                                {ok, _} ->
                                    {error, bad_relup, fmt("~ts: the relup is for another version than ~ts",
                                                           [Label, To])};
                                {error, _, _} = E -> E
                            end
                    end;
                {ok, _} ->
                    {error, missing_file, fmt("~ts: the package has no ~ts", [Tar, RelFile])};
                {error, Why} ->
                    {error, bad_package, fmt("~ts: cannot read the package: ~ts", [Tar, Why])}
            end
    end.

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
            {error, no_relup, fmt("no relup from ~ts to ~ts: ~ts ~ts, and ~ts",
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
                    {error, no_relup, fmt("~ts has no ~ts entry for ~ts",
                                          [File, section_word(Section), Key])}
            end;
        {ok, {Other, _, _}} ->
            {error, bad_relup, fmt("~ts: the relup is for version ~ts, not ~ts", [File, Other, FileVsn])};
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

relup_term(File, {ok, [{Vsn, Ups, Downs}]}) when is_list(Vsn), is_list(Ups), is_list(Downs) ->
    case [E || E <- Ups ++ Downs, not valid_entry(E)] of
        [] -> {ok, {Vsn, Ups, Downs}};
        [Bad | _] ->
            {error, bad_relup, fmt("~ts: malformed entry ~ts (expected {Vsn, Descr, [Instruction]})",
                                   [File, cap(Bad)])}
    end;
relup_term(File, {ok, Terms}) ->
    {error, bad_relup, fmt("~ts: expected one term {Vsn, Ups, Downs}, found ~ts",
                           [File, cap(Terms)])};
relup_term(File, {error, enoent}) ->
    {error, missing_file, fmt("~ts: no such file", [File])};
relup_term(File, {error, {Line, Mod, Term}}) when is_integer(Line) ->
    {error, bad_relup, fmt("~ts: line ~b: ~ts", [File, Line, Mod:format_error(Term)])};
relup_term(File, {error, Reason}) when is_atom(Reason) ->
    {error, bad_relup, fmt("~ts: ~ts", [File, file:format_error(Reason)])};
relup_term(File, {error, Reason}) ->
    {error, bad_relup, fmt("~ts: ~ts", [File, cap(Reason)])}.

valid_entry({V, _Descr, Script}) -> is_list(V) andalso is_list(Script);
valid_entry(_) -> false.

%%% APPUPS %%%

%% Applications whose version differs between the two releases, with the
%% appup that describes the change: for an upgrade, the new version's appup
%% (up section, keyed by the old version); for a downgrade, the higher
%% (running) version's appup (down section, keyed by the lower version).
appups(#{direction := Dir, from_libs := FromLibs, to_libs := ToLibs, source := Source}) ->
    FromV = maps:from_list([{A, {V, D}} || {A, V, D} <- FromLibs]),
    ToV = maps:from_list([{A, {V, D}} || {A, V, D} <- ToLibs]),
    Changed = [{A, maps:get(A, FromV, undefined), maps:get(A, ToV, undefined)}
               || A <- lists:usort(maps:keys(FromV) ++ maps:keys(ToV)),
                  element(1, maps:get(A, FromV, {x, x})) =/= element(1, maps:get(A, ToV, {y, y}))],
    [appup(Dir, Source, A, F, T) || {A, F, T} <- Changed].

appup(_Dir, _Source, App, undefined, {Vsn, _}) ->
    #{app => App, from => null, to => bin(Vsn), change => added, file => null,
      instructions => [], error => null};
appup(_Dir, _Source, App, {Vsn, _}, undefined) ->
    #{app => App, from => bin(Vsn), to => null, change => removed, file => null,
      instructions => [], error => null};
appup(Dir, Source, App, {FromVsn, FromDir}, {ToVsn, ToDir}) ->
    {LibDir, Section, Key} = case Dir of
                                 up -> {ToDir, up, FromVsn};
                                 down -> {FromDir, down, ToVsn}
                             end,
    Rel = filename:join([LibDir, "ebin", atom_to_list(App) ++ ".appup"]),
    Base = #{app => App, from => bin(FromVsn), to => bin(ToVsn), change => changed},
    case read_source(Source, Rel) of
        {ok, Bin, Label} ->
            case parse_appup(Label, Bin, Section, Key) of
                {ok, Instrs} ->
                    Base#{file => bin(Label), instructions => Instrs, error => null};
                {error, Code, Msg} ->
                    Base#{file => bin(Label), instructions => [],
                          error => #{code => Code, message => Msg}}
            end;
        {error, Code, Msg, Label} ->
            Base#{file => bin(Label), instructions => [], error => #{code => Code, message => Msg}}
    end.

%% @doc Parse an appup file's bytes and pick the instructions of one
%% section for one version (a string, or a regular expression as a binary).
%% The result is JSON: one object per high-level instruction.
-spec parse_appup(Label, Bytes, Section, Vsn) -> {ok, [map()]} | err()
    when Label :: string(), Bytes :: binary(), Section :: up | down, Vsn :: string().
parse_appup(Label, Bytes, Section, Vsn) ->
    case consult_bin(Bytes) of
        {ok, [{_AppVsn, Ups, Downs}]} when is_list(Ups), is_list(Downs) ->
            Entries = case Section of up -> Ups; down -> Downs end,
            case [Is || {Key, Is} <- Entries, vsn_match(Key, Vsn)] of
                [Is | _] when is_list(Is) -> {ok, [appup_json(I) || I <- Is]};
                [_ | _] -> {error, bad_appup, fmt("~ts: the instructions for ~ts are not a list", [Label, Vsn])};
                [] -> {error, bad_appup, fmt("~ts: no ~ts entry for ~ts", [Label, section_word(Section), Vsn])}
            end;
        {ok, Terms} ->
            {error, bad_appup, fmt("~ts: expected {Vsn, Ups, Downs}, found ~ts", [Label, cap(Terms)])};
        {error, Why} ->
            {error, bad_appup, fmt("~ts: ~ts", [Label, Why])}
    end.

vsn_match(Key, Vsn) when is_list(Key) -> Key =:= Vsn;
vsn_match(Key, Vsn) when is_binary(Key) ->
    try re:run(Vsn, <<"^(?:", Key/binary, ")$">>, [unicode, {capture, none}]) =:= match
    catch _:_ -> false
    end;
vsn_match(_, _) -> false.

%% @doc One high-level appup instruction as JSON, defaults made explicit
%% (see appup(4)): `kind', `module', `prePurge'/`postPurge' (`brutal' or
%% `soft'), `deps', `defaulted' (which fields came from defaults), `text'.
-spec appup_json(Instruction) -> map() when Instruction :: term().
appup_json(I) ->
    Text = text(I),
    maps:put(text, Text, appup_instr(I)).

appup_instr({update, M}) -> update(M, static, default, soft, brutal_purge, brutal_purge, [],
                                   [change, prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, supervisor}) ->
    update(M, static, default, supervisor, brutal_purge, brutal_purge, [],
           [prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, Deps}) when is_list(Deps) ->
    update(M, static, default, soft, brutal_purge, brutal_purge, Deps,
           [change, prePurge, postPurge, timeout, modType]);
appup_instr({update, M, Change}) ->
    update(M, static, default, Change, brutal_purge, brutal_purge, [],
           [prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, Change, Deps}) ->
    update(M, static, default, Change, brutal_purge, brutal_purge, Deps,
           [prePurge, postPurge, timeout, modType]);
appup_instr({update, M, Change, Pre, Post, Deps}) ->
    update(M, static, default, Change, Pre, Post, Deps, [timeout, modType]);
appup_instr({update, M, Timeout, Change, Pre, Post, Deps}) ->
    update(M, static, Timeout, Change, Pre, Post, Deps, [modType]);
appup_instr({update, M, ModType, Timeout, Change, Pre, Post, Deps}) ->
    update(M, ModType, Timeout, Change, Pre, Post, Deps, []);
appup_instr({load_module, M}) ->
    load(M, brutal_purge, brutal_purge, [], [prePurge, postPurge, deps]);
appup_instr({load_module, M, Deps}) ->
    load(M, brutal_purge, brutal_purge, Deps, [prePurge, postPurge]);
appup_instr({load_module, M, Pre, Post, Deps}) ->
    load(M, Pre, Post, Deps, []);
appup_instr({add_module, M}) -> #{kind => add_module, module => M, deps => [], defaulted => [deps]};
appup_instr({add_module, M, Deps}) -> #{kind => add_module, module => M, deps => mods(Deps), defaulted => []};
appup_instr({delete_module, M}) -> #{kind => delete_module, module => M, deps => [], defaulted => [deps]};
appup_instr({delete_module, M, Deps}) -> #{kind => delete_module, module => M, deps => mods(Deps), defaulted => []};
appup_instr({add_application, A}) -> #{kind => add_application, application => A, type => permanent,
                                       defaulted => [type]};
appup_instr({add_application, A, T}) -> #{kind => add_application, application => A, type => T,
                                          defaulted => []};
appup_instr({remove_application, A}) -> #{kind => remove_application, application => A};
appup_instr({restart_application, A}) -> #{kind => restart_application, application => A};
appup_instr({apply, {M, F, Args}}) when is_list(Args) ->
    #{kind => apply, mfa => beamdeck_agent_terms:mfa({M, F, Args})};
appup_instr(restart_new_emulator) -> #{kind => restart_new_emulator};
appup_instr(restart_emulator) -> #{kind => restart_emulator};
appup_instr(Other) -> maps:remove(text, instruction_json(Other)).

update(M, ModType, Timeout, Change, Pre, Post, Deps, Defaulted) ->
    {ChangeKind, Extra} = case Change of
                              {advanced, E} -> {advanced, printed(E)};
                              soft -> {soft, null};
                              supervisor -> {supervisor, null};
                              Other -> {text(Other), null}
                          end,
    #{kind => update, module => M, modType => ModType, timeout => timeout_json(Timeout),
      change => ChangeKind, extra => Extra, codeChange => ChangeKind =:= advanced,
      prePurge => purge_json(Pre), postPurge => purge_json(Post), deps => mods(Deps),
      defaulted => Defaulted}.

load(M, Pre, Post, Deps, Defaulted) ->
    #{kind => load_module, module => M, prePurge => purge_json(Pre),
      postPurge => purge_json(Post), deps => mods(Deps), defaulted => Defaulted}.

%% @doc `brutal_purge' → `brutal', `soft_purge' → `soft'.
-spec purge_json(Purge) -> binary() when Purge :: term().
purge_json(brutal_purge) -> <<"brutal">>;
purge_json(soft_purge) -> <<"soft">>;
purge_json(Other) -> text(Other).

timeout_json(T) when is_integer(T) -> T;
timeout_json(T) when is_atom(T) -> T;
timeout_json(T) -> text(T).

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

%% @doc A path as the wire JSON: `name', `from', `to', `direction',
%% `relupFile', `rewrittenOnDisk', `descr', `script' (the original
%% low-level instructions), `onDisk' (null when the file holds the
%% original), and `appups' (one entry per changed application).
-spec path_json(Path) -> map() when Path :: path().
path_json(#{name := Name, from := From, to := To, direction := Dir, relup_file := File,
            script := Script, on_disk := OnDisk, descr := Descr} = P) ->
    #{name => bin(Name), from => bin(From), to => bin(To), direction => Dir,
      relupFile => bin(File), targetStatus => maps:get(to_status, P, null),
      source => case maps:get(source, P) of dir -> dir; {package, _} -> package end,
      descr => printed(Descr),
      rewrittenOnDisk => maps:get(rewritten_on_disk, P, false),
      script => script_json(Script),
      onDisk => case OnDisk =:= Script of true -> null; false -> script_json(OnDisk) end,
      appups => appups(P)}.

%%% TARGET OBJECT CODE %%%

%% @doc The target release's object code of `Module' (for the lint of the
%% next version): the beam in the library that the script's
%% `load_object_code' names.
-spec target_beam(Path, Module) -> {ok, binary()} | {error, binary()}
    when Path :: path(), Module :: module().
target_beam(#{script := Script, to_libs := ToLibs, from_libs := FromLibs, source := Source}, Module) ->
    case [{App, Vsn} || {load_object_code, {App, Vsn, Mods}} <- Script, lists:member(Module, Mods)] of
        [{App, Vsn} | _] ->
            case [D || {A, V, D} <- ToLibs ++ FromLibs, A =:= App, V =:= Vsn] of
                [Dir | _] ->
                    Rel = filename:join([Dir, "ebin", atom_to_list(Module) ++ ".beam"]),
                    case read_source(Source, Rel) of
                        {ok, Bin, _} -> {ok, Bin};
                        {error, _, Msg, _} -> {error, Msg}
                    end;
                [] -> {error, fmt("no library ~ts-~ts in the target release", [App, Vsn])}
            end;
        [] -> {error, fmt("the script loads no object code for ~ts", [Module])}
    end.

%% @doc target_beam/2 for several modules, reading a package once.
-spec target_beams(Path, Modules) -> #{module() => {ok, binary()} | {error, binary()}}
    when Path :: path(), Modules :: [module()].
target_beams(#{source := dir} = Path, Modules) ->
    maps:from_list([{M, target_beam(Path, M)} || M <- Modules]);
target_beams(#{source := {package, Tar}, script := Script, to_libs := ToLibs} = Path, Modules) ->
    Where = [{M, [filename:join([D, "ebin", atom_to_list(M) ++ ".beam"])
                  || {load_object_code, {App, Vsn, Mods}} <- Script, lists:member(M, Mods),
                     {A, V, D} <- ToLibs, A =:= App, V =:= Vsn]}
             || M <- Modules],
    Files = case tar_files(Tar, lists:append([Fs || {_, Fs} <- Where])) of
                {ok, Map} -> Map;
                {error, _} -> #{}
            end,
    maps:from_list([{M, case Fs of
                            [F | _] when is_map_key(F, Files) -> {ok, maps:get(F, Files)};
                            _ -> target_beam(Path, M)
                        end} || {M, Fs} <- Where]).

%%% FILES %%%

read_source(dir, Path) ->
    case file:read_file(Path) of
        {ok, Bin} -> {ok, Bin, Path};
        {error, enoent} -> {error, missing_file, fmt("~ts: no such file", [Path]), Path};
        {error, R} -> {error, missing_file, fmt("~ts: ~ts", [Path, file:format_error(R)]), Path}
    end;
read_source({package, Tar}, Path) ->
    Label = Tar ++ ":" ++ Path,
    case tar_files(Tar, [Path]) of
        {ok, #{Path := Bin}} -> {ok, Bin, Label};
        {ok, _} -> {error, missing_file, fmt("~ts: not in the package", [Label]), Label};
        {error, Why} -> {error, bad_package, fmt("~ts: ~ts", [Label, Why]), Label}
    end.

tar_files(Tar, Names) ->
    case erl_tar:extract(Tar, [memory, compressed, {files, Names}]) of
        {ok, List} -> {ok, maps:from_list(List)};
        {error, Reason} -> {error, unicode:characters_to_binary(erl_tar:format_error(Reason))}
    end.

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
        {error, {Line, Mod, Msg}} -> {error, fmt("line ~p: ~ts", [Line, Mod:format_error(Msg)])}
    end;
scan({done, {eof, _}, _}, Acc) -> {ok, lists:reverse(Acc)};
scan({done, {error, {Line, Mod, Msg}, _}, _}, _Acc) ->
    {error, fmt("line ~p: ~ts", [Line, Mod:format_error(Msg)])};
%% The text ended inside a term (or right after its final dot): tell the
%% scanner so.
scan({more, Cont}, Acc) ->
    case erl_scan:tokens(Cont, eof, 1) of
        {more, _} -> {error, <<"unterminated term (missing '.')">>};
        Done -> scan(Done, Acc)
    end.

%%% HELPERS %%%

bin(S) when is_list(S) -> unicode:characters_to_binary(S);
bin(B) when is_binary(B) -> B;
bin(A) when is_atom(A) -> atom_to_binary(A, utf8).

maybe_bin(undefined) -> null;
maybe_bin(S) -> bin(S).

text(T) -> maps:get(text, beamdeck_agent_terms:printed(T, 2000)).

printed(T) -> beamdeck_agent_terms:printed(T, 2000).

cap(T) -> maps:get(text, beamdeck_agent_terms:printed(T, 300)).

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
