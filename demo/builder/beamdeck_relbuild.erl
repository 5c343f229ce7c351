%%% @doc Builds real OTP releases, with hot-upgrade packages, for the
%%% beamdeck demo and integration tests.
%%%
%%% Over 400 lines because it is one escript, run by path inside each OTP
%%% chroot and on hosts without the repository's build tools: a second file
%%% would have to be found and loaded next to it everywhere it runs.
%%%
%%% Run as `escript demo/builder/beamdeck_relbuild.erl SPECFILE'. SPECFILE
%%% holds one Erlang map:
%%%
%%% ```
%%% #{name => "rel_test",                      % release and application name
%%%   app_dir => "/work/main/demo/apps/rel_test", % one directory per version
%%%   versions => ["0.1.0", "0.1.1", "0.1.2"],    % oldest first; first = base
%%%   agent_dir => "/work/main/agent",            % or none
%%%   cache_dir => "/work/main/.cache/releases",
%%%   strip => false}.                            % optional; true: no debug_info (Erlang only)
%%% '''
%%%
%%% A version directory holds `NAME.app.src' (at its root or in `src/'),
%%% Elixir sources in `lib/' or Erlang sources in `src/', optionally
%%% `NAME.appup' (root or `src/') and `sys.config'. Each version is compiled
%%% into its own ebin; `.rel', boot scripts, relups (each version from the one
%%% before it, up and down) and release packages come from systools. The
%%% base package is unpacked into a runnable target system the way OTP's
%%% `sasl/examples/src/target_system.erl' does it; the later packages wait,
%%% not unpacked, in the target's `releases/'.
%%%
%%% The output, `CACHE_DIR/NAME-HASH/', is keyed by a hash of every input
%%% (sources of every version, agent sources, spec, this file, OTP and Elixir
%%% versions): `build/' holds the artefacts, `target/' a pristine target
%%% system to copy (never run it in place), `manifest.json' describes both.
%%% The last line on stdout is that manifest as JSON, with `"cached"'.
-module(beamdeck_relbuild).
-mode(compile).

-export([main/1, build/1]).

-include_lib("kernel/include/file.hrl").

-define(HASH_CHARS, 20).
-define(ELIXIRC_TIMEOUT, 120000).

%%% ENTRY POINTS %%%

%% @doc escript entry: builds the release the spec file describes.
-spec main(Args) -> no_return() when Args :: [string()].
main([SpecFile]) ->
    try
        Spec = case file:consult(SpecFile) of
                   {ok, [S]} when is_map(S) -> S;
                   {ok, _} -> fail("~ts: expected exactly one map term", [SpecFile]);
                   {error, Reason} -> fail("cannot read spec ~ts: ~ts",
                                           [SpecFile, file:format_error(Reason)])
               end,
        Manifest = build(Spec),
        io:put_chars([json(Manifest), $\n]),
        halt(0)
    catch
        throw:{relbuild_error, Msg} ->
            io:put_chars(standard_error, ["beamdeck_relbuild: error: ", Msg, $\n]),
            halt(1)
    end;
main(_) ->
    io:put_chars(standard_error,
                 "usage: escript beamdeck_relbuild.erl SPECFILE\n"),
    halt(2).

%% @doc Builds (or finds in the cache) the release the spec describes and
%% returns its manifest. Throws `{relbuild_error, Message}' when it cannot.
-spec build(Spec) -> Manifest when
      Spec :: map(),
      Manifest :: map().
build(Spec0) ->
    Spec = check_spec(Spec0),
    #{name := Name, cache_dir := CacheDir} = Spec,
    Env = environment(Spec),
    Hash = input_hash(Spec, Env),
    OutDir = filename:join(CacheDir, Name ++ "-" ++ Hash),
    ManifestFile = filename:join(OutDir, "manifest.json"),
    case filelib:is_regular(ManifestFile) of
        true ->
            (manifest(Spec, Env, Hash, OutDir))#{cached => true};
        false ->
            ok = filelib:ensure_dir(filename:join(CacheDir, "x")),
            Tmp = OutDir ++ ".tmp-" ++ os:getpid(),
            _ = rm_rf(Tmp),
            try
                Manifest = do_build(Spec, Env, Hash, Tmp, OutDir),
                ok = file:write_file(filename:join(Tmp, "manifest.json"),
                                     json(Manifest)),
                publish(Tmp, OutDir),
                prune(CacheDir, Name, OutDir),
                Manifest#{cached => false}
            catch
                Class:Reason:Stack ->
                    _ = rm_rf(Tmp),
                    erlang:raise(Class, Reason, Stack)
            end
    end.

%%% SPEC AND ENVIRONMENT %%%

check_spec(Spec) ->
    Name = str(required(name, Spec)),
    AppDir = filename:absname(str(required(app_dir, Spec))),
    Versions = [str(V) || V <- required(versions, Spec)],
    Versions =:= [] andalso fail("spec: versions is empty", []),
    AgentDir = case maps:get(agent_dir, Spec, none) of
                   none -> none;
                   D -> filename:absname(str(D))
               end,
    CacheDir = filename:absname(str(required(cache_dir, Spec))),
    lists:foreach(fun(V) ->
                          filelib:is_dir(filename:join(AppDir, V)) orelse
                              fail("no sources for ~ts ~ts in ~ts", [Name, V, AppDir])
                  end, Versions),
    Kind = case lists:any(fun(V) -> elixir_sources(filename:join(AppDir, V)) =/= [] end,
                          Versions) of
               true -> elixir;
               false -> erlang
           end,
    Strip = maps:get(strip, Spec, false),
    is_boolean(Strip) orelse fail("spec: strip must be true or false", []),
    (Strip andalso Kind =:= elixir) andalso fail("spec: strip is for Erlang releases", []),
    #{name => Name, app_dir => AppDir, versions => Versions,
      agent_dir => AgentDir, cache_dir => CacheDir, kind => Kind, strip => Strip}.

required(Key, Spec) ->
    case maps:find(Key, Spec) of
        {ok, V} -> V;
        error -> fail("spec: missing ~p", [Key])
    end.

str(B) when is_binary(B) -> unicode:characters_to_list(B);
str(A) when is_atom(A) -> atom_to_list(A);
str(L) when is_list(L) -> L.

%% What the build depends on besides the sources: OTP, erts and, for an
%% Elixir app, where Elixir lives.
environment(#{kind := Kind}) ->
    Root = code:root_dir(),
    OtpRel = erlang:system_info(otp_release),
    OtpVersion = case file:read_file(filename:join([Root, "releases", OtpRel, "OTP_VERSION"])) of
                     {ok, B} -> string:trim(binary_to_list(B));
                     {error, _} -> OtpRel
                 end,
    Elixir = case Kind of
                 elixir -> elixir_env();
                 erlang -> none
             end,
    #{root => Root, otp => OtpVersion, erts => erlang:system_info(version),
      elixir => Elixir}.

elixir_env() ->
    Elixirc = case os:find_executable("elixirc") of
                  false -> fail("elixirc is not on PATH (needed for Elixir sources)", []);
                  E -> E
              end,
    %% /usr/bin/elixirc is a link into ELIXIR_ROOT/bin; the apps sit in
    %% ELIXIR_ROOT/lib/APP/ebin.
    Real = realpath(Elixirc),
    LibDir = filename:join(filename:dirname(filename:dirname(Real)), "lib"),
    filelib:is_regular(filename:join([LibDir, "elixir", "ebin", "elixir.app"])) orelse
        fail("cannot find Elixir's ebin dirs under ~ts", [LibDir]),
    {ok, [{application, elixir, Props}]} =
        file:consult(filename:join([LibDir, "elixir", "ebin", "elixir.app"])),
    #{elixirc => Elixirc, lib_dir => LibDir, vsn => proplists:get_value(vsn, Props)}.

realpath(Path) ->
    realpath(filename:absname(Path), 0).

realpath(_Path, 20) ->
    fail("too many symbolic links", []);
realpath(Path, N) ->
    case file:read_link(Path) of
        {ok, Target} ->
            realpath(filename:absname(Target, filename:dirname(Path)), N + 1);
        {error, _} ->
            Path
    end.

%%% CACHE KEY %%%

%% Every file that can change the output goes into the hash, with its path
%% relative to its tree so that moving the checkout keeps the cache valid.
input_hash(Spec, Env) ->
    #{name := Name, app_dir := AppDir, versions := Versions, agent_dir := AgentDir,
      kind := Kind} = Spec,
    Self = case escript_file() of
               none -> <<>>;
               File -> read(File)
           end,
    AppFiles = [{V, tree_digest(filename:join(AppDir, V))} || V <- Versions],
    AgentFiles = case AgentDir of
                     none -> none;
                     _ -> [{D, tree_digest(filename:join(AgentDir, D))}
                           || D <- ["src", "include", "priv"]]
                 end,
    Ctx0 = {Name, Versions, Kind, maps:remove(root, Env), erlang:md5(Self),
            AppFiles, AgentFiles, otp_app_versions()},
    %% Unchanged keys for the usual builds (their caches stay valid).
    Ctx = case maps:get(strip, Spec) of
              false -> Ctx0;
              true -> {Ctx0, stripped}
          end,
    Digest = crypto:hash(sha256, term_to_binary(Ctx)),
    lists:sublist(hex(Digest), ?HASH_CHARS).

escript_file() ->
    try escript:script_name() of
        F -> F
    catch
        _:_ -> none
    end.

tree_digest(Dir) ->
    case filelib:is_dir(Dir) of
        false -> none;
        true ->
            Files = lists:sort(filelib:wildcard("**", Dir)),
            [{F, crypto:hash(sha256, read(filename:join(Dir, F)))}
             || F <- Files, filelib:is_regular(filename:join(Dir, F))]
    end.

otp_app_versions() ->
    lists:sort([filename:basename(D) || D <- filelib:wildcard(filename:join(code:lib_dir(), "*"))]).

hex(Bin) ->
    lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).

%%% BUILD %%%

do_build(Spec, Env, Hash, Tmp, FinalDir) ->
    #{name := Name, versions := Versions, agent_dir := AgentDir} = Spec,
    T0 = erlang:monotonic_time(millisecond),
    Build = filename:join(Tmp, "build"),
    LibDir = filename:join(Build, "lib"),
    ok = filelib:ensure_dir(filename:join(LibDir, "x")),
    %% The agent compiles here while elixirc runs in its own OS processes.
    [Agent, Apps] = step("compile",
                         fun() ->
                                 pmap(fun(F) -> F() end,
                                      [fun() when AgentDir =:= none -> none;
                                          () -> build_agent(AgentDir, LibDir, compile_opts(Spec))
                                       end,
                                       fun() -> build_app_versions(Spec, Env, LibDir) end])
                         end),
    Rels = step("scripts", fun() ->
                                   RelDirs = [write_rel(Spec, Env, V, maps:get(V, Apps), Agent, Build)
                                              || V <- Versions],
                                   Rs = lists:zip(Versions, RelDirs),
                                   lists:foreach(fun({V, {RelFile, Paths}}) ->
                                                         make_script(V, RelFile, Paths)
                                                 end, Rs),
                                   make_relups(Rs),
                                   Rs
                           end),
    [{Base, {BaseRel, BasePaths}} | Upgrades] = Rels,
    step("tars", fun() ->
                         %% Independent of one another: one process each.
                         pmap(fun({V, {RelFile, Paths}, Extra}) ->
                                      make_tar(V, RelFile, Paths, Extra)
                              end,
                              [{Base, {BaseRel, BasePaths}, [{erts, maps:get(root, Env)}]}
                               | [{V, R, appup_files(Name, V, element(2, R))} || {V, R} <- Upgrades]])
                 end),
    Target = filename:join(Tmp, "target"),
    step("target", fun() ->
                           make_target(Name, Env, Base, BaseRel, Target,
                                       filename:join(FinalDir, "target")),
                           lists:foreach(
                             fun({V, {RelFile, _}}) ->
                                     Pkg = filename:rootname(RelFile, ".rel") ++ ".tar.gz",
                                     Dest = filename:join([Target, "releases",
                                                           Name ++ "-" ++ V ++ ".tar.gz"]),
                                     {ok, _} = file:copy(Pkg, Dest)
                             end, Upgrades)
                   end),
    log("built ~ts in ~b ms", [Name, erlang:monotonic_time(millisecond) - T0]),
    manifest(Spec, Env, Hash, FinalDir).

step(What, Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    Res = Fun(),
    log("~ts: ~b ms", [What, erlang:monotonic_time(millisecond) - T0]),
    Res.

%% Runs Fun on every element in its own process. All of them finish before
%% the first failure (a relbuild_error or a crash) is raised, so nothing is
%% still writing into the build directory when it is removed.
pmap(Fun, List) ->
    Parent = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() ->
                                       Parent ! {Ref, try {ok, Fun(E)}
                                                      catch C:R:St -> {error, C, R, St}
                                                      end}
                               end),
                Ref
            end || E <- List],
    Results = [receive {Ref, Res} -> Res end || Ref <- Refs],
    case [E || {error, _, _, _} = E <- Results] of
        [] -> [V || {ok, V} <- Results];
        [{error, C, R, St} | _] -> erlang:raise(C, R, St)
    end.

%% The agent: every module in agent/src, compiled here with erlc's
%% compiler so the build does not depend on rebar3 output.
build_agent(AgentDir, LibDir, CompileOpts) ->
    Src = filename:join(AgentDir, "src"),
    [AppSrc] = case filelib:wildcard(filename:join(Src, "*.app.src")) of
                   [_] = One -> One;
                   _ -> fail("~ts: expected one *.app.src", [Src])
               end,
    {App, Props} = read_app_src(AppSrc),
    Vsn = proplists:get_value(vsn, Props),
    Ebin = filename:join([LibDir, atom_to_list(App) ++ "-" ++ Vsn, "ebin"]),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    Incs = [{i, filename:join(AgentDir, "include")}, {i, Src}],
    Mods = pmap(fun(F) -> compile_erl(F, Ebin, CompileOpts ++ Incs, "agent") end,
                lists:sort(filelib:wildcard(filename:join(Src, "*.erl")))),
    check_mod(App, Props, Mods, AppSrc),
    write_app(Ebin, App, Props, Mods),
    copy_dir(filename:join(AgentDir, "priv"), filename:join(filename:dirname(Ebin), "priv")),
    #{app => App, vsn => Vsn, ebin => Ebin, props => Props}.

check_mod(App, Props, Mods, AppSrc) ->
    case proplists:get_value(mod, Props) of
        {Mod, _} ->
            lists:member(Mod, Mods) orelse
                fail("~ts names {mod, {~ts, _}} but there is no ~ts.erl beside it: "
                     "application ~ts cannot start",
                     [AppSrc, Mod, Mod, App]);
        undefined -> true
    end.

build_app_versions(#{name := Name, app_dir := AppDir, versions := Versions} = Spec, Env, LibDir) ->
    App = list_to_atom(Name),
    %% Compile every version first (elixirc runs in parallel OS processes).
    Jobs = [begin
                VDir = filename:join(AppDir, V),
                {AppSrc, Props} = find_app_src(VDir, App),
                proplists:get_value(vsn, Props) =:= V orelse
                    fail("~ts: vsn is ~p, the directory says ~ts",
                         [AppSrc, proplists:get_value(vsn, Props), V]),
                Ebin = filename:join([LibDir, Name ++ "-" ++ V, "ebin"]),
                ok = filelib:ensure_dir(filename:join(Ebin, "x")),
                {V, VDir, Props, Ebin, start_elixirc(Env, VDir, Ebin)}
            end || V <- Versions],
    maps:from_list(
      [begin
           await_elixirc(Port, VDir),
           ErlMods = [compile_erl(F, Ebin, compile_opts(Spec) ++ [{i, filename:join(VDir, "include")},
                                                                  {i, filename:join(VDir, "src")}], Name)
                      || F <- lists:sort(filelib:wildcard(filename:join(VDir, "src/*.erl")))],
           Mods = lists:usort(ErlMods ++ beams(Ebin)),
           check_mod(App, Props, Mods, VDir),
           write_app(Ebin, App, Props, Mods),
           copy_appup(VDir, Name, Ebin),
           {V, #{app => App, vsn => V, ebin => Ebin, props => Props, dir => VDir}}
       end || {V, VDir, Props, Ebin, Port} <- Jobs]).

find_app_src(VDir, App) ->
    Name = atom_to_list(App) ++ ".app.src",
    case [F || F <- [filename:join(VDir, Name), filename:join([VDir, "src", Name])],
               filelib:is_regular(F)] of
        [F | _] ->
            {App, Props} = read_app_src(F),
            {F, Props};
        [] ->
            fail("~ts: no ~ts (at its root or in src/)", [VDir, Name])
    end.

read_app_src(File) ->
    case file:consult(File) of
        {ok, [{application, App, Props}]} when is_list(Props) -> {App, Props};
        {ok, _} -> fail("~ts: expected {application, Name, Props}.", [File]);
        {error, Reason} -> fail("~ts: ~ts", [File, file:format_error(Reason)])
    end.

copy_appup(VDir, Name, Ebin) ->
    File = Name ++ ".appup",
    case [F || F <- [filename:join(VDir, File), filename:join([VDir, "src", File])],
               filelib:is_regular(F)] of
        [F | _] ->
            {ok, [_]} = consult_or_fail(F),
            {ok, _} = file:copy(F, filename:join(Ebin, File)),
            ok;
        [] ->
            ok
    end.

consult_or_fail(File) ->
    case file:consult(File) of
        {ok, _} = Ok -> Ok;
        {error, Reason} -> fail("~ts: ~ts", [File, file:format_error(Reason)])
    end.

elixir_sources(VDir) ->
    filelib:wildcard(filename:join(VDir, "lib/**/*.ex")).

start_elixirc(Env, VDir, Ebin) ->
    case elixir_sources(VDir) of
        [] ->
            none;
        Files ->
            #{elixir := #{elixirc := Elixirc}} = Env,
            Port = open_port({spawn_executable, Elixirc},
                             [{args, ["-o", Ebin | Files]}, {cd, VDir}, exit_status,
                              stderr_to_stdout, binary, hide]),
            {Port, Files}
    end.

await_elixirc(none, _VDir) ->
    ok;
await_elixirc({Port, Files}, VDir) ->
    await_elixirc(Port, Files, VDir, []).

await_elixirc(Port, Files, VDir, Acc) ->
    receive
        {Port, {data, Data}} ->
            await_elixirc(Port, Files, VDir, [Acc, Data]);
        {Port, {exit_status, 0}} ->
            ok;
        {Port, {exit_status, Status}} ->
            fail("elixirc failed (exit ~b) in ~ts:~n~ts", [Status, VDir, Acc])
    after ?ELIXIRC_TIMEOUT ->
            catch port_close(Port),
            fail("elixirc timed out in ~ts (~p)", [VDir, Files])
    end.

%% A stripped build compiles as plain `erlc' does: no debug_info.
compile_opts(#{strip := true}) -> [];
compile_opts(#{strip := false}) -> [debug_info].

compile_erl(File, Ebin, Opts0, What) ->
    Opts = [return_errors, return_warnings, {outdir, Ebin} | Opts0],
    case compile:file(File, Opts) of
        {ok, Mod, _Warnings} ->
            Mod;
        {error, Errors, _Warnings} ->
            fail("~ts module ~ts does not compile:~n~ts",
                 [What, File, format_errors(Errors)])
    end.

format_errors(Errors) ->
    [[io_lib:format("  ~ts:~ts: ~ts~n", [File, loc(Loc), Mod:format_error(Desc)])
      || {Loc, Mod, Desc} <- Descs]
     || {File, Descs} <- Errors].

loc({Line, Col}) -> io_lib:format("~b:~b", [Line, Col]);
loc(Line) when is_integer(Line) -> integer_to_list(Line);
loc(Other) -> io_lib:format("~p", [Other]).

beams(Ebin) ->
    [list_to_atom(filename:basename(F, ".beam"))
     || F <- filelib:wildcard(filename:join(Ebin, "*.beam"))].

write_app(Ebin, App, Props, Mods) ->
    Props1 = lists:keystore(modules, 1, Props, {modules, lists:usort(Mods)}),
    Props2 = case lists:keymember(description, 1, Props1) of
                 true -> Props1;
                 false -> [{description, atom_to_list(App)} | Props1]
             end,
    write_term(filename:join(Ebin, atom_to_list(App) ++ ".app"),
               {application, App, Props2}).

%%% RELEASES %%%

%% The .rel of one version: the OTP and Elixir applications the app and
%% the agent need (recursively, the same versions in every release, so
%% relups leave them alone), the agent, then the app.
write_rel(Spec, Env, V, AppInfo, Agent, Build) ->
    #{name := Name, kind := Kind} = Spec,
    App = list_to_atom(Name),
    Known = maps:from_list([{App, AppInfo} | [{maps:get(app, Agent), Agent} || Agent =/= none]]),
    Base = [kernel, stdlib, sasl] ++ case Kind of
                                         elixir -> [compiler, elixir, logger];
                                         erlang -> []
                                     end,
    Roots = Base ++ [maps:get(app, Agent) || Agent =/= none] ++ [App],
    Closure = closure(Roots, Known, Env),
    Entries = [rel_entry(A, Vsn, Agent) || {A, Vsn, _Ebin} <- Closure],
    RelDir = filename:join([Build, "rel", V]),
    ok = filelib:ensure_dir(filename:join(RelDir, "x")),
    RelFile = filename:join(RelDir, Name ++ "-" ++ V ++ ".rel"),
    write_term(RelFile, {release, {Name, V}, {erts, maps:get(erts, Env)}, Entries}),
    SysConfig = filename:join(maps:get(dir, AppInfo), "sys.config"),
    case filelib:is_regular(SysConfig) of
        true ->
            {ok, [_]} = consult_or_fail(SysConfig),
            {ok, _} = file:copy(SysConfig, filename:join(RelDir, "sys.config"));
        false ->
            ok = file:write_file(filename:join(RelDir, "sys.config"), "[].\n")
    end,
    {RelFile, [Ebin || {_, _, Ebin} <- Closure]}.

%% The agent must never take the node down with it: it runs temporary.
rel_entry(A, Vsn, #{app := A}) -> {A, Vsn, temporary};
rel_entry(A, Vsn, _Agent) -> {A, Vsn}.

closure(Roots, Known, Env) ->
    closure(Roots, Known, Env, []).

closure([], _Known, _Env, Acc) ->
    lists:reverse(Acc);
closure([A | Rest], Known, Env, Acc) ->
    case lists:keymember(A, 1, Acc) of
        true ->
            closure(Rest, Known, Env, Acc);
        false ->
            {Vsn, Ebin, Props} = app_info(A, Known, Env),
            Deps = proplists:get_value(applications, Props, []) ++
                proplists:get_value(included_applications, Props, []),
            %% Dependencies first, so the .rel reads in start order.
            Acc1 = lists:reverse(closure(Deps, Known, Env, Acc)),
            closure(Rest, Known, Env, [{A, Vsn, Ebin} | Acc1])
    end.

app_info(A, Known, Env) ->
    case maps:find(A, Known) of
        {ok, #{vsn := Vsn, ebin := Ebin, props := Props}} ->
            {Vsn, Ebin, Props};
        error ->
            Ebin = find_ebin(A, Env),
            AppFile = filename:join(Ebin, atom_to_list(A) ++ ".app"),
            {ok, [{application, A, Props}]} = consult_or_fail(AppFile),
            {proplists:get_value(vsn, Props), Ebin, Props}
    end.

find_ebin(A, Env) ->
    ElixirEbin = case Env of
                     #{elixir := #{lib_dir := ELib}} ->
                         filename:join([ELib, atom_to_list(A), "ebin"]);
                     _ -> none
                 end,
    case ElixirEbin =/= none andalso filelib:is_dir(ElixirEbin) of
        true -> ElixirEbin;
        false ->
            case code:lib_dir(A) of
                {error, bad_name} -> fail("application ~ts is not installed", [A]);
                Dir -> filename:join(Dir, "ebin")
            end
    end.

make_script(V, RelFile, Paths) ->
    Res = systools:make_script(filename:rootname(RelFile, ".rel"),
                               [{path, Paths}, {outdir, filename:dirname(RelFile)},
                                silent]),
    check_systools(Res, "make_script " ++ V).

%% Each version upgrades from, and downgrades to, the one before it.
make_relups([_]) ->
    ok;
make_relups([{_, {OldRel, OldPaths}} | [{V, {NewRel, NewPaths}} | _] = Rest]) ->
    Old = filename:rootname(OldRel, ".rel"),
    Res = systools:make_relup(filename:rootname(NewRel, ".rel"), [Old], [Old],
                              [{path, lists:usort(OldPaths ++ NewPaths)},
                               {outdir, filename:dirname(NewRel)}, silent]),
    check_systools(Res, "make_relup " ++ V),
    make_relups(Rest).

%% systools:make_tar/2 leaves .appup files out; put the app's back in, so a
%% package carries its high-level instructions for beamdeck to show.
appup_files(Name, V, Paths) ->
    File = Name ++ ".appup",
    Found = [filename:join(P, File) || P <- Paths, filelib:is_regular(filename:join(P, File)),
                                       lists:suffix(Name ++ "-" ++ V, filename:dirname(P))],
    [{extra_files, [{F, "lib/" ++ Name ++ "-" ++ V ++ "/ebin/" ++ File} || F <- Found]} || Found =/= []].

make_tar(V, RelFile, Paths, Extra) ->
    Res = systools:make_tar(filename:rootname(RelFile, ".rel"),
                            [{path, Paths}, {outdir, filename:dirname(RelFile)}, silent
                             | Extra]),
    check_systools(Res, "make_tar " ++ V).

check_systools(ok, _What) -> ok;
check_systools({ok, _Mod, _Warnings}, _What) -> ok;
check_systools({ok, _Relup, _Mod, _Warnings}, _What) -> ok;
check_systools({error, Mod, Reason}, What) ->
    fail("~ts failed: ~ts", [What, Mod:format_error(Reason)]);
check_systools(Other, What) ->
    fail("~ts failed: ~p", [What, Other]).

%% The base package becomes a runnable system, as target_system.erl does
%% it: unpack, bin/erl from erl.src, start_erl.data, RELEASES. The RELEASES
%% file keeps library paths relative to the root (OTP 25's
%% create_RELEASES/4 with Root = ""), so a copy of the target runs as is.
make_target(Name, Env, Base, BaseRel, Target, FinalTarget) ->
    Pkg = filename:rootname(BaseRel, ".rel") ++ ".tar.gz",
    ok = filelib:ensure_dir(filename:join(Target, "x")),
    ok = erl_tar:extract(Pkg, [{cwd, Target}, compressed]),
    Erts = maps:get(erts, Env),
    ErtsBin = filename:join([Target, "erts-" ++ Erts, "bin"]),
    Bin = filename:join(Target, "bin"),
    ok = filelib:ensure_dir(filename:join(Bin, "x")),
    %% erl.src finds its root from its own location (dyn_erl --realpath),
    %% so FINAL_ROOTDIR only matters if dyn_erl is missing.
    {ok, ErlSrc} = file:read_file(filename:join(ErtsBin, "erl.src")),
    Erl = filename:join(Bin, "erl"),
    ok = file:write_file(Erl, subst(ErlSrc, [{<<"%FINAL_ROOTDIR%">>, FinalTarget},
                                             {<<"%EMU%">>, <<"beam">>}])),
    ok = file:change_mode(Erl, 8#755),
    _ = [file:delete(filename:join(ErtsBin, F)) || F <- ["erl", "start"]],
    ok = file:make_dir(filename:join(Target, "log")),
    RelDir = filename:join(Target, "releases"),
    ok = file:write_file(filename:join(RelDir, "start_erl.data"),
                         [Erts, " ", Base, "\n"]),
    RelFile = filename:join([RelDir, Base, Name ++ "-" ++ Base ++ ".rel"]),
    filelib:is_regular(RelFile) orelse
        ({ok, _} = file:copy(BaseRel, RelFile)),
    case release_handler:create_RELEASES("", RelDir, RelFile, []) of
        ok -> ok;
        Error -> fail("create_RELEASES: ~p", [Error])
    end,
    SysConfig = filename:join([RelDir, Base, "sys.config"]),
    filelib:is_regular(SysConfig) orelse (ok = file:write_file(SysConfig, "[].\n")),
    ok.

subst(Bin, Pairs) ->
    lists:foldl(fun({From, To}, Acc) ->
                        binary:replace(Acc, From, unicode:characters_to_binary(To), [global])
                end, Bin, Pairs).

%% Two builders racing for the same hash: the first rename wins and the
%% other one drops its copy.
publish(Tmp, OutDir) ->
    case file:rename(Tmp, OutDir) of
        ok -> ok;
        {error, _} ->
            case filelib:is_regular(filename:join(OutDir, "manifest.json")) of
                true -> rm_rf(Tmp);
                false -> fail("cannot move ~ts to ~ts", [Tmp, OutDir])
            end
    end.

%% Old builds of the same release go once they are an hour old and two
%% newer ones exist (a process may still be copying from a recent one), as
%% do leftovers of crashed builders.
prune(CacheDir, Name, Keep) ->
    Now = erlang:system_time(second),
    Aged = fun(Dir) ->
                   case file:read_file_info(Dir, [{time, posix}]) of
                       {ok, #file_info{mtime = M}} -> {Now - M, Dir};
                       {error, _} -> {0, Dir}
                   end
           end,
    Entries = [Aged(D) || D <- filelib:wildcard(filename:join(CacheDir, Name ++ "-*")),
                          D =/= Keep, filelib:is_dir(D)],
    {Tmps, Builds} = lists:partition(fun({_, D}) -> string:find(D, ".tmp-") =/= nomatch end,
                                     Entries),
    Old = lists:nthtail(min(2, length(Builds)), lists:sort(Builds)),
    _ = [rm_rf(D) || {Age, D} <- Tmps ++ Old, Age > 3600],
    ok.

manifest(Spec, Env, Hash, OutDir) ->
    #{name := Name, versions := [Base | _] = Versions, agent_dir := AgentDir,
      kind := Kind} = Spec,
    Pairs = lists:zip(lists:droplast(Versions), tl(Versions)),
    #{name => Name,
      hash => Hash,
      kind => Kind,
      dir => OutDir,
      buildDir => filename:join(OutDir, "build"),
      templateDir => filename:join(OutDir, "target"),
      baseVersion => Base,
      versions => Versions,
      upgrades => [#{from => F, to => T} || {F, T} <- Pairs],
      packages => [Name ++ "-" ++ V || V <- tl(Versions)],
      erts => maps:get(erts, Env),
      otp => maps:get(otp, Env),
      elixir => case maps:get(elixir, Env) of
                    none -> null;
                    #{vsn := EVsn} -> EVsn
                end,
      agent => AgentDir =/= none,
      stripped => maps:get(strip, Spec)}.

%%% FILES %%%

read(File) ->
    case file:read_file(File) of
        {ok, B} -> B;
        {error, Reason} -> fail("cannot read ~ts: ~ts", [File, file:format_error(Reason)])
    end.

write_term(File, Term) ->
    ok = file:write_file(File, io_lib:format("~tp.~n", [Term])).

copy_dir(Src, Dest) ->
    case filelib:is_dir(Src) of
        false -> ok;
        true ->
            lists:foreach(
              fun(F) ->
                      S = filename:join(Src, F),
                      case filelib:is_regular(S) of
                          true ->
                              D = filename:join(Dest, F),
                              ok = filelib:ensure_dir(D),
                              {ok, _} = file:copy(S, D);
                          false -> ok
                      end
              end, filelib:wildcard("**", Src))
    end.

rm_rf(Dir) ->
    file:del_dir_r(Dir).

%%% OUTPUT %%%

log(Fmt, Args) ->
    io:format(standard_error, "beamdeck_relbuild: " ++ Fmt ++ "~n", Args).

-spec fail(Fmt :: string(), Args :: [term()]) -> no_return().
fail(Fmt, Args) ->
    throw({relbuild_error, io_lib:format(Fmt, Args)}).

%% A small JSON writer for the manifest (OTP 25 has no json module).
json(null) -> <<"null">>;
json(true) -> <<"true">>;
json(false) -> <<"false">>;
json(N) when is_integer(N) -> integer_to_binary(N);
json(A) when is_atom(A) -> json_string(atom_to_binary(A));
json(B) when is_binary(B) -> json_string(B);
json(M) when is_map(M) ->
    Fields = [[json_string(key(K)), $:, json(V)] || {K, V} <- lists:sort(maps:to_list(M))],
    [${, lists:join($,, Fields), $}];
json(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) of
        true when L =/= [] -> json_string(unicode:characters_to_binary(L));
        _ -> [$[, lists:join($,, [json(E) || E <- L]), $]]
    end.

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_binary(K) -> K;
key(K) when is_list(K) -> unicode:characters_to_binary(K).

json_string(B) ->
    [$", [esc(C) || C <- unicode:characters_to_list(B)], $"].

esc($") -> <<"\\\"">>;
esc($\\) -> <<"\\\\">>;
esc($\n) -> <<"\\n">>;
esc(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> unicode:characters_to_binary([C]).
