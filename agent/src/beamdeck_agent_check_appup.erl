%%% @doc Appup completeness (issue 13): for every module of the applications
%%% whose version changes, the code loaded now against the target release's
%%% object code and what the relup does with it.
%%%
%%% - `appup_missing_module' (error): loaded, the target's beam differs, and
%%%   the script neither loads nor removes it: it keeps running the old code
%%%   (systools only checks that the appup has an entry for the version);
%%%   also a loaded module the target no longer has that the script does not
%%%   delete, and, in embedded mode (no autoloading), a new module the
%%%   script does not add.
%%% - `running_code_differs' (warning): the loaded code is not the from
%%%   release's own beam on disk (someone hot-patched the node; the upgrade
%%%   replaces or keeps that patch without saying so).
%%%
%%% Before make_permanent (the target is the release now current) every
%%% loaded module of the changed applications must already run the
%%% target's code, whatever the script did with it: a miss is the install's
%%% `appup_missing_module' still standing, and make_permanent would make it
%%% the node's permanent state.
%%%
%%% md5s: `beam_lib:md5/1' of a beam equals the loaded module's
%%% `erlang:get_module_info(M, md5)'.
-module(beamdeck_agent_check_appup).

-export([check/1, classify/1]).

-define(MAX_FROM_BEAMS, 5000).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{action := make_permanent, beams := Beams}) ->
    Target = maps:map(fun(_, Bin) -> md5(Bin) end, Beams),
    Facts = #{target => Target, from => #{}, loaded => loaded_md5s(maps:keys(Target)),
              touched => [], embedded => false},
    [installed_finding(M) || {changed, M} <- classify(Facts)];
check(#{path := Path, script := Script, beams := Beams}) ->
    FromBeams = from_beams(Path),
    Touched = touched(Script),
    Facts = #{target => maps:map(fun(_, Bin) -> md5(Bin) end, Beams),
              from => FromBeams,
              loaded => loaded_md5s(lists:usort(maps:keys(Beams) ++ maps:keys(FromBeams))),
              touched => Touched,
              embedded => code:get_mode() =:= embedded},
    [finding(F) || F <- classify(Facts)].

%% After install: the module still runs other code than the release now current.
installed_finding(M) ->
    beamdeck_agent_findings:new(
      appup_missing_module, M, [],
      beamdeck_agent_terms:fmt("~ts still runs other code than the installed release's beam (the relup did not "
          "load it, or someone loaded other code since): make_permanent would keep it that way", [M]),
      beamdeck_agent_terms:fmt("roll back, add {load_module, ~ts} to the application's appup and rebuild the relup; "
          "or accept it and load the module by hand", [M])).

%% @doc The decision, on plain facts (what EUnit tests): `target' and
%% `from' map module → md5 of the beam on disk, `loaded' module → md5 of
%% the code loaded now, `touched' the modules the script loads or removes.
-spec classify(Facts) -> [{Kind, module()}]
    when Facts :: #{target := #{module() => binary() | error}, from := #{module() => binary() | error},
                    loaded := #{module() => binary()}, touched := [module()], embedded := boolean()},
         Kind :: changed | added | removed | hot_patched.
classify(#{target := Target, from := From, loaded := Loaded, touched := Touched, embedded := Embedded}) ->
    Untouched = fun(M) -> not lists:member(M, Touched) end,
    Changed = [{changed, M} || {M, TMd5} <- lists:sort(maps:to_list(Target)), Untouched(M),
                               {ok, LMd5} <- [maps:find(M, Loaded)], TMd5 =/= error, LMd5 =/= TMd5],
    Added = [{added, M} || Embedded, M <- lists:sort(maps:keys(Target)), Untouched(M),
                           not maps:is_key(M, Loaded), not maps:is_key(M, From)],
    Removed = [{removed, M} || M <- lists:sort(maps:keys(From)), Untouched(M),
                               maps:is_key(M, Loaded), not maps:is_key(M, Target)],
    Patched = [{hot_patched, M} || {M, FMd5} <- lists:sort(maps:to_list(From)), FMd5 =/= error,
                                   {ok, LMd5} <- [maps:find(M, Loaded)], LMd5 =/= FMd5],
    Changed ++ Added ++ Removed ++ Patched.

finding({changed, M}) ->
    beamdeck_agent_findings:new(
      appup_missing_module, M, [],
      beamdeck_agent_terms:fmt("~ts changed between the releases and is loaded, but the relup neither loads nor "
          "removes it: after the upgrade it silently keeps running its old code", [M]),
      beamdeck_agent_terms:fmt("add {load_module, ~ts} to the application's appup (or {update, ~ts, {advanced, []}} "
          "if processes run it as their callback module) and rebuild the relup", [M, M]));
finding({added, M}) ->
    beamdeck_agent_findings:new(
      appup_missing_module, M, <<"added">>, [],
      beamdeck_agent_terms:fmt("~ts is new in the target release but the relup does not add it; the node runs in "
          "embedded mode, so nothing loads it and a call to it fails with undef", [M]),
      beamdeck_agent_terms:fmt("add {add_module, ~ts} to the application's appup and rebuild the relup", [M]));
finding({removed, M}) ->
    beamdeck_agent_findings:new(
      appup_missing_module, M, <<"removed">>, [],
      beamdeck_agent_terms:fmt("~ts is loaded but the target release no longer has it, and the relup does not "
          "delete it: its old code stays loaded", [M]),
      beamdeck_agent_terms:fmt("add {delete_module, ~ts} to the application's appup and rebuild the relup", [M]));
finding({hot_patched, M}) ->
    beamdeck_agent_findings:new(
      running_code_differs, M, [],
      beamdeck_agent_terms:fmt("the code of ~ts loaded now differs from the running release's beam on disk: "
          "someone hot-patched the node, and the upgrade replaces or keeps that patch "
          "without saying so", [M]),
      <<"check what was patched and whether the target release contains the fix">>).

%% Modules the script loads, removes or purges.
touched(Script) ->
    lists:usort(lists:append(
                  [[M || {load_object_code, {_, _, Ms}} <- Script, M <- Ms],
                   [M || {load, {M, _, _}} <- Script],
                   [M || {remove, {M, _, _}} <- Script],
                   [M || {purge, Ms} <- Script, is_list(Ms), M <- Ms]])).

from_beams(Path) ->
    Dirs = [D || {_App, D, _To} <- beamdeck_agent_checks:changed_apps(Path), D =/= none],
    Files = lists:sublist(lists:append([filelib:wildcard(filename:join([D, "ebin", "*.beam"]))
                                        || D <- Dirs]), ?MAX_FROM_BEAMS),
    maps:from_list([{list_to_atom(filename:basename(F, ".beam")),
                     case file:read_file(F) of
                         {ok, Bin} -> md5(Bin);
                         {error, _} -> error
                     end} || F <- Files]).

loaded_md5s(Mods) ->
    maps:from_list([{M, Md5} || M <- Mods, erlang:module_loaded(M),
                                Md5 <- [try erlang:get_module_info(M, md5) catch error:_ -> error end],
                                is_binary(Md5)]).

md5(Bin) ->
    case beam_lib:md5(Bin) of
        {ok, {_, Md5}} -> Md5;
        {error, _, _} -> error
    end.


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

facts(Over) ->
    maps:merge(#{target => #{}, from => #{}, loaded => #{}, touched => [], embedded => false}, Over).

changed_but_untouched_test() ->
    F = facts(#{target => #{a => <<1>>, b => <<2>>, c => <<3>>},
                from => #{a => <<0>>, b => <<0>>, c => <<3>>},
                loaded => #{a => <<0>>, b => <<0>>, c => <<3>>}, touched => [b]}),
    ?assertEqual([{changed, a}], classify(F)).

added_only_in_embedded_mode_test() ->
    F = facts(#{target => #{n => <<1>>}}),
    ?assertEqual([], classify(F)),
    ?assertEqual([{added, n}], classify(F#{embedded := true})),
    ?assertEqual([], classify(F#{embedded := true, touched := [n]})).

removed_and_hot_patched_test() ->
    F = facts(#{from => #{gone => <<1>>, p => <<2>>}, target => #{p => <<2>>},
                loaded => #{gone => <<1>>, p => <<9>>}}),
    ?assertEqual([{changed, p}, {removed, gone}, {hot_patched, p}], classify(F)).

md5_matches_loaded_code_test() ->
    {ok, _, Bin} = compile:forms([{attribute, 1, module, bd_md5_probe},
                                  {attribute, 1, export, [{f, 0}]},
                                  {function, 1, f, 0, [{clause, 1, [], [], [{atom, 1, ok}]}]}],
                                 [binary]),
    {module, _} = code:load_binary(bd_md5_probe, "bd_md5_probe.beam", Bin),
    try ?assertEqual(md5(Bin), maps:get(bd_md5_probe, loaded_md5s([bd_md5_probe, not_loaded_mod])))
    after code:purge(bd_md5_probe), code:delete(bd_md5_probe), code:purge(bd_md5_probe)
    end.

finding_ids_test() ->
    ?assertMatch(#{id := <<"appup_missing_module:a">>, severity := error}, finding({changed, a})),
    ?assertMatch(#{id := <<"appup_missing_module:a:removed">>}, finding({removed, a})),
    ?assertMatch(#{id := <<"running_code_differs:a">>, severity := warning}, finding({hot_patched, a})).
-endif.
