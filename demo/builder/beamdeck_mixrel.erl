%%% @doc Builds an Elixir `mix release' (mix's defaults, `strip_beams'
%%% included) with the beamdeck agent as a path dependency, in two
%%% versions, and the hot upgrade between them that mix does not make:
%%% the relup from systools, a release package, and a target system at the
%%% base version with the package waiting in its `releases/'.
%%%
%%% Run as `escript demo/builder/beamdeck_mixrel.erl SPECFILE' on the OTP
%%% and Elixir to build with (tools/beam/mix-release.ts runs it inside a
%%% chroot of scripts/otp-chroot.sh). SPECFILE holds one Erlang map:
%%%
%%% ```
%%% #{name => "bd_mix",                          % app and release name
%%%   project_dir => ".../demo/mix/bd_mix",       % one mix project per version
%%%   versions => ["1.0.0", "1.1.0"],             % base, then the upgrade
%%%   agent_dir => ".../agent",                   % copied, never built in place
%%%   cache_dir => ".../.cache/mix-releases-otp27"}.
%%% '''
%%%
%%% The new version's project holds `NAME.appup' at its root (mix writes
%%% none). Offline as /work/shared/notes/elixir-releases.md describes:
%%% MIX_REBAR3 is the system's rebar3, no hex. The output, keyed by a hash of
%%% every input, is `CACHE_DIR/NAME-HASH/target/' (copy it, never run it in
%%% place) and `manifest.json', also printed as the last line on stdout.
-module(beamdeck_mixrel).
-mode(compile).

-export([main/1]).

-define(MIX_TIMEOUT, 600000).

%% @doc escript entry: builds the mix release pair the spec file describes.
-spec main([string()]) -> no_return().
main([SpecFile]) ->
    try
        {ok, [Spec]} = file:consult(SpecFile),
        io:put_chars([json(build(Spec)), $\n]),
        halt(0)
    catch
        throw:{mixrel_error, Msg} ->
            io:put_chars(standard_error, ["beamdeck_mixrel: error: ", Msg, $\n]),
            halt(1)
    end;
main(_) ->
    io:put_chars(standard_error, "usage: escript beamdeck_mixrel.erl SPECFILE\n"),
    halt(2).

build(#{name := Name, project_dir := Proj, versions := [Base, Next] = Versions,
        agent_dir := AgentDir, cache_dir := CacheDir}) ->
    Elixir = string:trim(cmd("elixir --short-version")),
    Otp = otp_version(),
    Hash = hash([read(escript:script_name()), Elixir, Otp,
                 files(AgentDir, ["rebar.config", "src/*", "include/*"])
                 | [files(filename:join(Proj, V), ["mix.exs", "*.appup", "lib/**/*.ex"]) || V <- Versions]]),
    OutDir = filename:join(CacheDir, Name ++ "-" ++ Hash),
    Manifest = #{name => Name, hash => Hash, dir => OutDir,
                 templateDir => filename:join(OutDir, "target"),
                 baseVersion => Base, versions => Versions,
                 packages => [Name ++ "-" ++ Next], otp => Otp,
                 erts => erlang:system_info(version), elixir => Elixir},
    case filelib:is_regular(filename:join(OutDir, "manifest.json")) of
        true -> Manifest#{cached => true};
        false ->
            Work = OutDir ++ ".tmp-" ++ os:getpid(),
            _ = cmd("rm -rf '" ++ Work ++ "'"),
            ok = filelib:ensure_dir(filename:join([Work, "agent", "x"])),
            %% A copy: mix's rebar3 run writes _build into the dependency.
            _ = cmd("cp -r '" ++ AgentDir ++ "/src' '" ++ AgentDir ++ "/rebar.config' '"
                    ++ Work ++ "/agent/'"),
            [mix_release(Proj, V, Work) || V <- Versions],
            Rel = fun(V) -> filename:join([Work, V, "_build", "prod", "rel", Name]) end,
            package(Name, Base, Next, Rel(Base), Rel(Next), Proj),
            target(Name, Base, Next, Rel(Base), Rel(Next), filename:join(Work, "target")),
            ok = file:write_file(filename:join(Work, "manifest.json"), json(Manifest)),
            [_ = cmd("rm -rf '" ++ filename:join(Work, D) ++ "'") || D <- ["agent" | Versions]],
            %% Older builds of this name go (their sources are gone), not
            %% another builder's work in progress.
            [_ = cmd("rm -rf '" ++ D ++ "'")
             || D <- filelib:wildcard(filename:join(CacheDir, Name ++ "-*")),
                string:find(D, ".tmp-") =:= nomatch],
            ok = file:rename(Work, OutDir),
            Manifest#{cached => false}
    end.

mix_release(Proj, V, Work) ->
    Dir = filename:join(Work, V),
    _ = cmd("cp -r '" ++ filename:join(Proj, V) ++ "' '" ++ Dir ++ "'"),
    Env = [{"BEAMDECK_AGENT_DIR", filename:join(Work, "agent")},
           {"MIX_REBAR3", "/usr/bin/rebar3"}, {"MIX_ENV", "prod"},
           {"MIX_HOME", filename:join(Work, "mix_home")}],
    Port = open_port({spawn_executable, os:find_executable("mix")},
                     [{args, ["release", "--overwrite"]}, {cd, Dir}, {env, Env},
                      exit_status, stderr_to_stdout, binary]),
    await(Port, V, []).

await(Port, V, Acc) ->
    receive
        {Port, {data, D}} -> await(Port, V, [Acc, D]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, S}} -> fail("mix release ~ts failed (exit ~b):~n~ts", [V, S, Acc])
    after ?MIX_TIMEOUT -> fail("mix release ~ts timed out", [V])
    end.

%% The relup (up from Base, down to it) beside the new .rel, then the
%% package NAME-NEXT.tar.gz that release_handler:unpack_release/1 reads:
%% its releases/NAME-NEXT.rel names the release, start.boot, relup and
%% sys.config come from the .rel's directory.
package(Name, Base, Next, RelBase, RelNext, Proj) ->
    Appup = Name ++ ".appup",
    AppEbin = filename:join([RelNext, "lib", Name ++ "-" ++ Next, "ebin"]),
    {ok, _} = file:copy(filename:join([Proj, Next, Appup]), filename:join(AppEbin, Appup)),
    Paths = ebins(RelBase) ++ ebins(RelNext),
    NextDir = filename:join([RelNext, "releases", Next]),
    NextRel = filename:join(NextDir, Name ++ "-" ++ Next),
    {ok, _} = file:copy(filename:join(NextDir, Name ++ ".rel"), NextRel ++ ".rel"),
    {ok, _} = file:copy(filename:join(NextDir, "start.boot"), NextRel ++ ".boot"),
    BaseRel = filename:join([RelBase, "releases", Base, Name]),
    check(systools:make_relup(NextRel, [BaseRel], [BaseRel],
                              [{path, Paths}, {outdir, NextDir}, silent]), "make_relup"),
    %% The boot script's code path names the consolidated protocols; the
    %% appup goes along so the package carries its instructions.
    Extra = [{filename:join(AppEbin, Appup), "lib/" ++ Name ++ "-" ++ Next ++ "/ebin/" ++ Appup}
             | [{F, "releases/" ++ Next ++ "/consolidated/" ++ filename:basename(F)}
                || F <- filelib:wildcard(filename:join(NextDir, "consolidated/*.beam"))]],
    check(systools:make_tar(NextRel, [{path, ebins(RelNext)}, {outdir, NextDir},
                                      {extra_files, Extra}, silent]), "make_tar").

%% The base mix release as a target system release_handler can upgrade:
%% bin/erl from erl.src, releases/RELEASES (library paths relative to the
%% root, so a copy runs as is) and the package waiting in releases/.
target(Name, Base, Next, RelBase, RelNext, Target) ->
    _ = cmd("cp -a '" ++ RelBase ++ "' '" ++ Target ++ "'"),
    [ErtsBin] = filelib:wildcard(filename:join(Target, "erts-*/bin")),
    {ok, Src} = file:read_file(filename:join(ErtsBin, "erl.src")),
    Erl = filename:join([Target, "bin", "erl"]),
    ok = file:write_file(Erl, binary:replace(binary:replace(Src, <<"%FINAL_ROOTDIR%">>,
                                                           list_to_binary(Target), [global]),
                                            <<"%EMU%">>, <<"beam">>, [global])),
    ok = file:change_mode(Erl, 8#755),
    ok = file:make_dir(filename:join(Target, "log")),
    RelDir = filename:join(Target, "releases"),
    check(release_handler:create_RELEASES("", RelDir,
                                          filename:join([RelDir, Base, Name ++ ".rel"]), []),
          "create_RELEASES"),
    Pkg = Name ++ "-" ++ Next ++ ".tar.gz",
    {ok, _} = file:copy(filename:join([RelNext, "releases", Next, Pkg]),
                        filename:join(RelDir, Pkg)),
    ok.

ebins(Rel) -> filelib:wildcard(filename:join([Rel, "lib", "*", "ebin"])).

check(ok, _) -> ok;
check({ok, _, _}, _) -> ok;
check({ok, _, _, _}, _) -> ok;
check({error, Mod, Reason}, What) when is_atom(Mod) ->
    fail("~ts: ~ts", [What, Mod:format_error(Reason)]);
check(Other, What) -> fail("~ts: ~p", [What, Other]).

otp_version() ->
    Rel = erlang:system_info(otp_release),
    case file:read_file(filename:join([code:root_dir(), "releases", Rel, "OTP_VERSION"])) of
        {ok, B} -> string:trim(binary_to_list(B));
        {error, _} -> Rel
    end.

%% Every matching file's path and contents, sorted, for the cache key.
files(Dir, Globs) ->
    [[F, read(F)] || G <- Globs, F <- lists:sort(filelib:wildcard(filename:join(Dir, G))),
                     filelib:is_regular(F)].

read(F) -> {ok, B} = file:read_file(F), B.

hash(Parts) ->
    Hex = binary:encode_hex(crypto:hash(sha256, term_to_binary(Parts)), lowercase),
    binary_to_list(binary:part(Hex, 0, 20)).

cmd(C) -> os:cmd(C).

%% OTP 27's json (this builder runs on 27+); strings become JSON strings.
json(M) -> iolist_to_binary(json:encode(jsonable(M))).

jsonable(M) when is_map(M) -> maps:map(fun(_, V) -> jsonable(V) end, M);
jsonable([C | _] = S) when is_integer(C) -> unicode:characters_to_binary(S);
jsonable(L) when is_list(L) -> [jsonable(X) || X <- L];
jsonable(X) -> X.

fail(Fmt, Args) -> throw({mixrel_error, io_lib:format(Fmt, Args)}).
