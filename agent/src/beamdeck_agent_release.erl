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
%%% Which step a target version means (install, rollback, make_permanent)
%%% is decided here, once (step_context/2): the plan and the runner both ask.
%%% Relup files are read by beamdeck_agent_relup_read, appups by
%%% beamdeck_agent_appup, package members by beamdeck_agent_release_files.
%%%
%%% Bad or missing files are errors that name the file and the problem.
%%% Nothing here changes a file or the node.
-module(beamdeck_agent_release).

-export([rel_dir/0, releases_info/0, rels_json/1, state/1, step_context/2,
         status_vsn/2, path/2, target_beams/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([path_json/1, target_beam/2]).
-endif.

-define(MAX_PACKAGES, 100).
-define(MAX_RELEASES, 100).
-define(HANDLER_TIMEOUT, 3000).

-type rel() :: #{name := string(), vsn := string(), status := atom(),
                 libs := [{atom(), string(), string()}], erts := string() | undefined}.
-type source() :: beamdeck_agent_release_files:source().
-type path() :: #{name := string(), from := string(), to := string(),
                  direction := up | down, relup_file := string(), section := up | down,
                  script := list(), on_disk := list(), descr := term(),
                  rewritten_on_disk := boolean(),
                  from_libs := list(), to_libs := list(), source := source(),
                  to_status := atom()}.
-type err() :: {error, atom(), binary()}.
-type step() :: install | rollback | make_permanent.
-type step_context() :: #{step := step(), from := string(), to := string(),
                          permanent_step := boolean()}.
-export_type([path/0, rel/0, step/0, step_context/0]).

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

%% The root of the target system (library paths in RELEASES are relative to it).
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

%% @doc Releases as the short wire JSON of command results: `vsn', `status'.
-spec rels_json(Rels) -> [map()] when Rels :: [rel()].
rels_json(Rels) ->
    [#{vsn => bin(V), status => S} || #{vsn := V, status := S} <- Rels].

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
    case status_vsn(current, Rels) of
        undefined -> permanent(Rels);
        V -> V
    end.

permanent(Rels) -> status_vsn(permanent, Rels).

%% @doc The version of the first release with `Status', or `undefined'.
-spec status_vsn(Status, Rels) -> string() | undefined when Status :: atom(), Rels :: [rel()].
status_vsn(Status, Rels) ->
    case [V || #{vsn := V, status := S} <- Rels, S =:= Status] of
        [V | _] -> V;
        [] -> undefined
    end.

%%% WHICH STEP A TARGET MEANS %%%

%% @doc The step that takes the node to release `Vsn', decided once for the
%% plan (beamdeck_agent_plan) and the runner (beamdeck_agent_upgrade_steps):
%% `install' from the running release when `Vsn' is not running, `rollback'
%% when that target is the permanent release (an install through the
%% downgrade script, with no make_permanent after it: `permanent_step' is
%% false), `make_permanent' (from the permanent release) when `Vsn' is
%% installed and running but not permanent yet.
-spec step_context(Vsn, Rels) -> {ok, step_context()} | err()
    when Vsn :: string(), Rels :: [rel()].
step_context(Vsn, Rels) ->
    Current = status_vsn(current, Rels),
    Permanent = status_vsn(permanent, Rels),
    Running = case Current of undefined -> Permanent; _ -> Current end,
    if
        Running =:= undefined ->
            {error, not_found, <<"no release is running (release_handler knows no current or permanent release)">>};
        Vsn =:= Running, Current =/= undefined, Permanent =/= undefined ->
            {ok, #{step => make_permanent, from => Permanent, to => Vsn, permanent_step => true}};
        Vsn =:= Running ->
            {error, already_permanent, beamdeck_agent_terms:fmt("release ~ts is already running and permanent", [Vsn])};
        true ->
            Step = case Vsn =:= Permanent of true -> rollback; false -> install end,
            {ok, #{step => Step, from => Running, to => Vsn, permanent_step => Vsn =/= Permanent}}
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
        false -> {error, not_found, beamdeck_agent_terms:fmt("release ~ts is not installed on this node", [From])};
        {value, #{name := Name, libs := FromLibs}} ->
            case lists:search(fun(#{vsn := V}) -> V =:= To end, Rels) of
                {value, #{libs := ToLibs, status := Status}} ->
                    dir_path(RelDir, Name, From, To, FromLibs, ToLibs, Status);
                false ->
                    package_path(RelDir, Name, From, To, FromLibs)
            end
    end.

dir_path(RelDir, Name, From, To, FromLibs, ToLibs, Status) ->
    case beamdeck_agent_relup_read:locate(RelDir, From, To) of
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
            {error, not_found, beamdeck_agent_terms:fmt("no release ~ts: not in ~ts/RELEASES and no package ~ts",
                                   [To, RelDir, Tar])};
        true ->
            case beamdeck_agent_release_files:tar_files(Tar, [RelFile, RelupFile]) of
                {ok, #{RelFile := RelBin} = Files} ->
                    ToLibs = case beamdeck_agent_release_files:consult_bin(RelBin) of
                                 {ok, [{release, _, _, Apps}]} ->
                                     [{element(1, A), element(2, A),
                                       "lib/" ++ atom_to_list(element(1, A)) ++ "-" ++ element(2, A)}
                                      || A <- Apps, is_tuple(A)];
                                 _ -> []
                             end,
                    Label = Tar ++ ":" ++ RelupFile,
                    case maps:find(RelupFile, Files) of
                        error ->
                            {error, missing_file, beamdeck_agent_terms:fmt("~ts: the package has no ~ts (no upgrade path)",
                                                      [Tar, RelupFile])};
                        {ok, RelupBin} ->
                            case beamdeck_agent_relup_read:relup_term(Label, beamdeck_agent_release_files:consult_bin(RelupBin)) of
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
                                            {error, no_relup, beamdeck_agent_terms:fmt("~ts has no upgrade from ~ts",
                                                                  [Label, From])}
                                    end;
                                {ok, _} ->
                                    {error, bad_relup, beamdeck_agent_terms:fmt("~ts: the relup is for another version than ~ts",
                                                           [Label, To])};
                                {error, _, _} = E -> E
                            end
                    end;
                {ok, _} ->
                    {error, missing_file, beamdeck_agent_terms:fmt("~ts: the package has no ~ts", [Tar, RelFile])};
                {error, Why} ->
                    {error, bad_package, beamdeck_agent_terms:fmt("~ts: cannot read the package: ~ts", [Tar, Why])}
            end
    end.

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
      script => beamdeck_agent_relup_read:script_json(Script),
      onDisk => case OnDisk =:= Script of true -> null; false -> beamdeck_agent_relup_read:script_json(OnDisk) end,
      appups => beamdeck_agent_appup:appups(P)}.

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
                    case beamdeck_agent_release_files:read(Source, Rel) of
                        {ok, Bin, _} -> {ok, Bin};
                        {error, _, Msg, _} -> {error, Msg}
                    end;
                [] -> {error, beamdeck_agent_terms:fmt("no library ~ts-~ts in the target release", [App, Vsn])}
            end;
        [] -> {error, beamdeck_agent_terms:fmt("the script loads no object code for ~ts", [Module])}
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
    Files = case beamdeck_agent_release_files:tar_files(Tar, lists:append([Fs || {_, Fs} <- Where])) of
                {ok, Map} -> Map;
                {error, _} -> #{}
            end,
    maps:from_list([{M, case Fs of
                            [F | _] when is_map_key(F, Files) -> {ok, maps:get(F, Files)};
                            _ -> target_beam(Path, M)
                        end} || {M, Fs} <- Where]).
%%% HELPERS %%%

bin(S) when is_list(S) -> unicode:characters_to_binary(S);
bin(B) when is_binary(B) -> B;
bin(A) when is_atom(A) -> atom_to_binary(A, utf8).

maybe_bin(undefined) -> null;
maybe_bin(S) -> bin(S).

printed(T) -> beamdeck_agent_terms:printed(T, 2000).

