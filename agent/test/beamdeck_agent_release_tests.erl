-module(beamdeck_agent_release_tests).

-include_lib("eunit/include/eunit.hrl").

%% A release directory made by hand (release_handler is not running in
%% EUnit, so the statuses come from RELEASES): rel_x 1.0 permanent, 1.1
%% unpacked, 1.2 only as a package releases/rel_x-1.2.tar.gz.

-define(APPUP_11,
        {"1.1",
         [{"1.0", [{load_module, bd_m},
                   {update, bd_s, {advanced, [extra]}},
                   {load_module, bd_p, soft_purge, soft_purge, [bd_m]},
                   {update, bd_sup, supervisor},
                   {add_module, bd_new},
                   {delete_module, bd_old},
                   {apply, {io, format, ["hi"]}},
                   {restart_application, bd_other}]},
          {<<"0\\..*">>, [{restart_application, bd_app}]}],
         [{"1.0", [{load_module, bd_m}, {update, bd_s, {advanced, [extra]}}]}]}).

-define(SCRIPT_UP,
        [{load_object_code, {bd_app, "1.1", [bd_m, bd_s]}},
         point_of_no_return,
         {suspend, [bd_s]},
         {load, {bd_s, brutal_purge, brutal_purge}},
         {code_change, up, [{bd_s, [extra]}]},
         {resume, [bd_s]},
         {load, {bd_m, brutal_purge, brutal_purge}}]).

-define(SCRIPT_DOWN,
        [{load_object_code, {bd_app, "1.0", [bd_m]}},
         point_of_no_return,
         {load, {bd_m, brutal_purge, brutal_purge}}]).

setup() ->
    Dir = filename:join("/tmp", "bd_release_tests_" ++ os:getpid()),
    RelDir = filename:join(Dir, "releases"),
    Lib = fun(A, V) -> filename:join([Dir, "lib", A ++ "-" ++ V]) end,
    Write = fun(File, Term) ->
                    ok = filelib:ensure_dir(File),
                    ok = file:write_file(File, io_lib:format("%% coding: utf-8~n~tp.~n", [Term]))
            end,
    Releases = [{release, "rel_x", "1.1", "13.1.5",
                 [{kernel, "8.5.3", Lib("kernel", "8.5.3")}, {bd_app, "1.1", Lib("bd_app", "1.1")}],
                 unpacked},
                {release, "rel_x", "1.0", "13.1.5",
                 [{kernel, "8.5.3", Lib("kernel", "8.5.3")}, {bd_app, "1.0", Lib("bd_app", "1.0")}],
                 permanent}],
    Write(filename:join(RelDir, "RELEASES"), Releases),
    Write(filename:join([RelDir, "1.1", "relup"]),
          {"1.1", [{"1.0", [], ?SCRIPT_UP}], [{"1.0", [], ?SCRIPT_DOWN}]}),
    Write(filename:join([Lib("bd_app", "1.1"), "ebin", "bd_app.appup"]), ?APPUP_11),
    %% The beams the lint reads for the target version.
    {ok, bd_m, Beam} = compile:forms([{attribute, 1, module, bd_m},
                                      {attribute, 2, export, [{loop, 0}]},
                                      {function, 3, loop, 0,
                                       [{clause, 3, [], [],
                                         [{'receive', 3, [{clause, 3, [{var, 3, '_'}], [],
                                                           [{call, 3, {atom, 3, loop}, []}]}]}]}]}],
                                     [binary, debug_info]),
    ok = file:write_file(filename:join([Lib("bd_app", "1.1"), "ebin", "bd_m.beam"]), Beam),
    %% The package: .rel, relup and appup inside, as systools:make_tar writes them.
    Rel12 = {release, {"rel_x", "1.2"}, {erts, "13.1.5"}, [{kernel, "8.5.3"}, {bd_app, "1.2"}]},
    Relup12 = {"1.2", [{"1.0", [], [{load_object_code, {bd_app, "1.2", [bd_m]}}, point_of_no_return,
                                    {load, {bd_m, brutal_purge, brutal_purge}}]}], []},
    Appup12 = {"1.2", [{"1.0", [{load_module, bd_m}]}], []},
    Tar = filename:join(RelDir, "rel_x-1.2.tar.gz"),
    T = fun(Term) -> unicode:characters_to_binary(io_lib:format("~tp.~n", [Term])) end,
    ok = erl_tar:create(Tar, [{"releases/rel_x-1.2.rel", T(Rel12)},
                              {"releases/1.2/relup", T(Relup12)},
                              {"lib/bd_app-1.2/ebin/bd_app.appup", T(Appup12)},
                              {"lib/bd_app-1.2/ebin/bd_m.beam", Beam}], [compressed]),
    ok = file:write_file(filename:join(RelDir, "other-9.tar.gz"), <<"not a tar">>),
    ok = application:set_env(sasl, releases_dir, RelDir),
    Dir.

cleanup(Dir) ->
    application:unset_env(sasl, releases_dir),
    os:cmd("rm -rf " ++ Dir).

release_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun(Dir) ->
             {inorder,
              [{"state", ?_test(state(Dir))},
               {"upgrade path with appups", ?_test(up_path())},
               {"downgrade path", ?_test(down_path())},
               {"path from a package", ?_test(package_path())},
               {"target beams for the lint", ?_test(target_beam())},
               {"bad and missing files", ?_test(bad_files(Dir))}]}
     end}.

json(T) -> iolist_to_binary(beamdeck_agent_json:encode(T)).

state(Dir) ->
    {ok, S} = beamdeck_agent_release:state(#{}),
    _ = json(S),
    ?assertMatch(#{handler := false, stale := true, name := <<"rel_x">>,
                   current := <<"1.0">>, permanent := <<"1.0">>, path := null}, S),
    ?assertEqual(list_to_binary(filename:join(Dir, "releases")), maps:get(releasesDir, S)),
    ?assertEqual([{<<"1.1">>, unpacked}, {<<"1.0">>, permanent}],
                 [{V, St} || #{vsn := V, status := St} <- maps:get(releases, S)]),
    [R10] = [R || #{vsn := <<"1.0">>} = R <- maps:get(releases, S)],
    ?assertEqual([<<"kernel-8.5.3">>, <<"bd_app-1.0">>], maps:get(apps, R10)),
    ?assertMatch([#{file := <<"other-9.tar.gz">>, vsn := null},
                  #{file := <<"rel_x-1.2.tar.gz">>, package := <<"rel_x-1.2">>, vsn := <<"1.2">>,
                    unpacked := false}], maps:get(packages, S)),
    ?assertEqual([#{vsn => <<"1.1">>, state => unpacked, package => null},
                  #{vsn => <<"1.2">>, state => package, package => <<"rel_x-1.2">>}],
                 maps:get(pending, S)),
    {ok, S2} = beamdeck_agent_release:state(#{<<"vsn">> => <<"1.1">>}),
    ?assertMatch(#{path := #{from := <<"1.0">>, to := <<"1.1">>, direction := up}}, S2),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_release:state(#{<<"vsn">> => 11})).

up_path() ->
    {ok, P} = beamdeck_agent_release:path("1.0", "1.1"),
    J = beamdeck_agent_release:path_json(P),
    _ = json(J),
    ?assertMatch(#{from := <<"1.0">>, to := <<"1.1">>, direction := up, source := dir,
                   targetStatus := unpacked, rewrittenOnDisk := false, onDisk := null}, J),
    ?assertEqual([load_object_code, point_of_no_return, suspend, load, code_change, resume, load],
                 [Op || #{op := Op} <- maps:get(script, J)]),
    [_, _, Suspend, Load, CC | _] = maps:get(script, J),
    ?assertMatch(#{modules := [bd_s]}, Suspend),
    ?assertMatch(#{module := bd_s, prePurge := <<"brutal">>, postPurge := <<"brutal">>,
                   text := <<"{load,{bd_s,brutal_purge,brutal_purge}}">>}, Load),
    ?assertMatch(#{mode := up, modules := [#{module := bd_s, extra := #{text := <<"[extra]">>}}]}, CC),
    %% Only the application whose version changed, its appup parsed with
    %% the defaults made explicit.
    [App] = maps:get(appups, J),
    ?assertMatch(#{app := bd_app, from := <<"1.0">>, to := <<"1.1">>, change := changed, error := null},
                 App),
    [LM, Upd, LM2, Sup, Add, Del, Apply, Restart] = maps:get(instructions, App),
    ?assertMatch(#{kind := load_module, module := bd_m, prePurge := <<"brutal">>,
                   postPurge := <<"brutal">>, deps := [], defaulted := [prePurge, postPurge, deps],
                   text := <<"{load_module,bd_m}">>}, LM),
    ?assertMatch(#{kind := update, module := bd_s, change := advanced, codeChange := true,
                   extra := #{text := <<"[extra]">>}, prePurge := <<"brutal">>, timeout := default,
                   modType := static}, Upd),
    ?assertMatch(#{kind := load_module, prePurge := <<"soft">>, postPurge := <<"soft">>, deps := [bd_m],
                   defaulted := []}, LM2),
    ?assertMatch(#{kind := update, change := supervisor, codeChange := false}, Sup),
    ?assertMatch(#{kind := add_module, module := bd_new}, Add),
    ?assertMatch(#{kind := delete_module, module := bd_old}, Del),
    ?assertMatch(#{kind := apply, mfa := <<"io:format/1">>}, Apply),
    ?assertMatch(#{kind := restart_application, application := bd_other}, Restart).

down_path() ->
    %% 1.1 -> 1.0: releases/1.0/relup does not exist, so the downgrade
    %% section of releases/1.1/relup applies (as release_handler finds it).
    {ok, P} = beamdeck_agent_release:path("1.1", "1.0"),
    J = beamdeck_agent_release:path_json(P),
    ?assertMatch(#{direction := down, from := <<"1.1">>, to := <<"1.0">>}, J),
    ?assertMatch({_, _}, binary:match(maps:get(relupFile, J), <<"releases/1.1/relup">>)),
    ?assertEqual(?SCRIPT_DOWN, maps:get(script, P)),
    %% The appup of the higher version, its downgrade section.
    [#{instructions := [LM, Upd]}] = maps:get(appups, J),
    ?assertMatch(#{kind := load_module, module := bd_m}, LM),
    ?assertMatch(#{kind := update, module := bd_s}, Upd).

package_path() ->
    {ok, P} = beamdeck_agent_release:path("1.0", "1.2"),
    J = beamdeck_agent_release:path_json(P),
    _ = json(J),
    ?assertMatch(#{source := package, targetStatus := package, direction := up}, J),
    ?assertMatch({_, _}, binary:match(maps:get(relupFile, J), <<"rel_x-1.2.tar.gz:releases/1.2/relup">>)),
    [App] = maps:get(appups, J),
    ?assertMatch(#{app := bd_app, to := <<"1.2">>, error := null,
                   instructions := [#{kind := load_module, module := bd_m}]}, App),
    ?assertMatch({_, _}, binary:match(maps:get(file, App), <<"lib/bd_app-1.2/ebin/bd_app.appup">>)),
    {ok, Beam} = beamdeck_agent_release:target_beam(P, bd_m),
    ?assertMatch({ok, {bd_m, _}}, beam_lib:md5(Beam)),
    ?assertMatch({error, not_found, _}, beamdeck_agent_release:path("1.0", "7.7")).

target_beam() ->
    {ok, P} = beamdeck_agent_release:path("1.0", "1.1"),
    {ok, Beam} = beamdeck_agent_release:target_beam(P, bd_m),
    {ok, A} = beamdeck_agent_lint:analyze(bd_m, Beam),
    ?assertEqual([{loop, 0}], [{F, Ar} || #{function := F, arity := Ar} <- beamdeck_agent_lint:findings(A)]),
    %% bd_s.beam is not there: the error names the file.
    {error, Msg} = beamdeck_agent_release:target_beam(P, bd_s),
    ?assertMatch({_, _}, binary:match(Msg, <<"lib/bd_app-1.1/ebin/bd_s.beam: no such file">>)),
    ?assertMatch({error, _}, beamdeck_agent_release:target_beam(P, bd_none)).

bad_files(Dir) ->
    Appup = filename:join([Dir, "lib", "bd_app-1.1", "ebin", "bd_app.appup"]),
    ok = file:write_file(Appup, <<"{\"1.1\", [{\"1.0\", [{load_module, bd_m}]}] oops.">>),
    {ok, P} = beamdeck_agent_release:path("1.0", "1.1"),
    [#{error := #{code := bad_appup, message := Msg}}] = maps:get(appups, beamdeck_agent_release:path_json(P)),
    ?assertMatch({0, _}, binary:match(Msg, list_to_binary(Appup))),
    ok = file:delete(Appup),
    [#{error := #{code := missing_file, message := Msg2}}] =
        maps:get(appups, beamdeck_agent_release:path_json(P)),
    ?assertEqual(<<(list_to_binary(Appup))/binary, ": no such file">>, Msg2),
    %% Regular expressions as appup versions (OTP 25 allows them).
    {ok, [#{kind := restart_application, application := bd_app}]} =
        beamdeck_agent_appup:parse_appup("x.appup", list_to_binary(io_lib:format("~tp.", [?APPUP_11])),
                                           up, "0.5.1"),
    ?assertMatch({error, bad_appup, <<"x.appup: no downgrade entry for 0.5.1">>},
                 beamdeck_agent_appup:parse_appup("x.appup", list_to_binary(io_lib:format("~tp.", [?APPUP_11])),
                                                    down, "0.5.1")),
    Relup = filename:join([Dir, "releases", "1.1", "relup"]),
    ok = file:write_file(Relup, <<"garbage">>),
    {error, bad_relup, RMsg} = beamdeck_agent_release:path("1.0", "1.1"),
    ?assertMatch({0, _}, binary:match(RMsg, list_to_binary(Relup))),
    ?assertMatch({error, bad_relup, _}, beamdeck_agent_release:state(#{<<"vsn">> => <<"1.1">>})).

%% Which step a target version means: decided once, by step_context/2, for
%% the plan and the runner alike.
step_context_test() ->
    Rels = fun(Statuses) -> [#{name => "r", vsn => V, status => S, libs => [], erts => undefined}
                             || {V, S} <- Statuses] end,
    Ctx = fun(Vsn, Statuses) -> beamdeck_agent_release:step_context(Vsn, Rels(Statuses)) end,
    %% Running the permanent release: a new version is an install from it.
    ?assertEqual({ok, #{step => install, from => "1.0", to => "1.1", permanent_step => true}},
                 Ctx("1.1", [{"1.0", permanent}, {"1.1", unpacked}])),
    %% Installed, not yet permanent: the same target means make_permanent;
    %% the permanent one means rollback (no make_permanent follows it);
    %% another version is an install from the running (current) release.
    Installed = [{"1.0", permanent}, {"1.1", current}, {"1.2", unpacked}],
    ?assertEqual({ok, #{step => make_permanent, from => "1.0", to => "1.1", permanent_step => true}},
                 Ctx("1.1", Installed)),
    ?assertEqual({ok, #{step => rollback, from => "1.1", to => "1.0", permanent_step => false}},
                 Ctx("1.0", Installed)),
    ?assertEqual({ok, #{step => install, from => "1.1", to => "1.2", permanent_step => true}},
                 Ctx("1.2", Installed)),
    ?assertMatch({error, already_permanent, _}, Ctx("1.0", [{"1.0", permanent}])),
    ?assertMatch({error, not_found, _}, Ctx("1.0", [{"1.0", unpacked}])).
