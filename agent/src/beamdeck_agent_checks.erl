%%% @doc The upgrade checks beyond purges (issue 13): the one place that
%%% runs every `beamdeck_agent_check_*' module for a plan and gathers their
%%% findings (beamdeck_agent_findings).
%%%
%%% Each check gets one context: the step, the upgrade path, the script as
%%% it will run, its modules, and the target release's object code of every
%%% application whose version changes (read once, here). A check that
%%% crashes loses only its own findings: it is logged and the others run.
%%% The checks run before install and before a rollback. make_permanent
%%% loads no code: before it only appup completeness runs, against the
%%% release now current (a module the install left on its old code is made
%%% permanent that way). The whole run has a time budget; the
%%% checks that need a peer node (the rehearsal) get what is left of it.
-module(beamdeck_agent_checks).

-export([run/3, context/3, changed_apps/1, target_lib_beams/1]).

-define(BUDGET_MS, 10000).
-define(MAX_BEAMS, 5000).

-type context() :: #{action := install | rollback | make_permanent,
                     path := beamdeck_agent_release:path(), script := list(),
                     mods := [map()], beams := #{module() => binary()},
                     deadline := integer()}.
-export_type([context/0]).

-define(CHECKS, [beamdeck_agent_check_appup, beamdeck_agent_check_suspend,
                 beamdeck_agent_check_funs, beamdeck_agent_check_load_order,
                 beamdeck_agent_check_sys_config, beamdeck_agent_check_nif,
                 beamdeck_agent_check_rehearsal]).

%% @doc The findings of every check for the step `Action' along `Path'
%% with the script as it will run (`Script', purge choices applied).
-spec run(Action, Path, Script) -> [beamdeck_agent_findings:finding()]
    when Action :: install | rollback | make_permanent, Path :: beamdeck_agent_release:path(),
         Script :: list().
run(Action, Path, Script) ->
    Ctx = context(Action, Path, Script),
    Checks = case Action of
                 make_permanent -> [beamdeck_agent_check_appup];
                 _ -> ?CHECKS
             end,
    lists:append([one(Check, Ctx) || Check <- Checks]).

one(Check, Ctx) ->
    try Check:check(Ctx)
    catch Class:Reason:Stack ->
            logger:warning("beamdeck: upgrade check ~p crashed: ~p:~p ~p",
                           [Check, Class, Reason, lists:sublist(Stack, 3)]),
            []
    end.

%% @doc The context the checks share (see the module doc).
-spec context(Action, Path, Script) -> context()
    when Action :: install | rollback | make_permanent, Path :: beamdeck_agent_release:path(),
         Script :: list().
context(Action, Path, Script) ->
    #{action => Action, path => Path, script => Script,
      mods => beamdeck_agent_relup:modules(Script),
      beams => target_lib_beams(Path),
      deadline => erlang:monotonic_time(millisecond) + ?BUDGET_MS}.

%% @doc The applications whose version differs between the two releases
%% (or that only the target has): `[{App, FromDir | none, ToDir}]'.
-spec changed_apps(Path) -> [{atom(), string() | none, string()}]
    when Path :: beamdeck_agent_release:path().
changed_apps(#{from_libs := FromLibs, to_libs := ToLibs}) ->
    [{App, case lists:keyfind(App, 1, FromLibs) of
               {App, _, FromDir} -> FromDir;
               false -> none
           end, ToDir}
     || {App, Vsn, ToDir} <- ToLibs,
        lists:keyfind(App, 1, FromLibs) =:= false orelse element(2, lists:keyfind(App, 1, FromLibs)) =/= Vsn].

%% @doc The target's object code of every module of the changed
%% applications (at most ?MAX_BEAMS): from the unpacked release's library
%% directories, or from the package.
-spec target_lib_beams(Path) -> #{module() => binary()} when Path :: beamdeck_agent_release:path().
target_lib_beams(#{source := Source} = Path) ->
    Dirs = [ToDir || {_App, _, ToDir} <- changed_apps(Path)],
    case Source of
        dir ->
            Files = lists:sublist(lists:append([filelib:wildcard(filename:join([D, "ebin", "*.beam"]))
                                                || D <- Dirs]), ?MAX_BEAMS),
            maps:from_list([{list_to_atom(filename:basename(F, ".beam")), Bin}
                            || F <- Files, {ok, Bin} <- [file:read_file(F)]]);
        {package, Tar} ->
            Wanted = fun(Name) ->
                             lists:any(fun(D) -> lists:prefix(D ++ "/ebin/", Name) end, Dirs)
                                 andalso filename:extension(Name) =:= ".beam"
                     end,
            Names = case erl_tar:table(Tar, [compressed]) of
                        {ok, All} -> lists:sublist([N || N <- All, Wanted(N)], ?MAX_BEAMS);
                        {error, _} -> []
                    end,
            case Names =/= [] andalso erl_tar:extract(Tar, [memory, compressed, {files, Names}]) of
                {ok, Files} ->
                    maps:from_list([{list_to_atom(filename:basename(N, ".beam")), Bin}
                                    || {N, Bin} <- Files]);
                false -> #{};
                {error, _} -> #{}
            end
    end.
