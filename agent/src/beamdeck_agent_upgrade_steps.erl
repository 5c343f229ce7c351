%%% @doc The steps of an upgrade command, run in the runner process of
%%% beamdeck_agent_upgrade: unpack, install (and rollback, an install
%%% through the downgrade script), make_permanent. Which step a version
%%% means comes from beamdeck_agent_release:step_context/2, as in the plan;
%%% before it acts, a step recomputes the plan and checks it against the
%%% command's gate (beamdeck_agent_gate). The deaths around it are
%%% compared with the prediction by beamdeck_agent_deaths.
%%%
%%% Over 400 lines because install, rollback and make_permanent share the
%%% same gate, death watch and verification calls; each step is a few
%%% functions, the helpers below are theirs.
-module(beamdeck_agent_upgrade_steps).

-export([execute/3, choices_by_vsn/1]).

-define(STEP_TIMEOUT, 900000).
-define(UNPACK_TIMEOUT, 300000).
-define(REBOOT_WAIT, 120000).

-type outcome() :: {ok, map()} | {error, atom(), binary(), map() | null}.

%%% STEPS (in the runner) %%%

%% @doc The default executor of a command's action (beamdeck_agent_upgrade's `exec').
-spec execute(Action, Command, Ctx) -> outcome() when Action :: atom(), Command :: map(), Ctx :: map().
execute(unpack, Cmd, Ctx) -> unpack(Cmd, Ctx);
execute(install, Cmd, Ctx) -> install(Cmd, Ctx);
execute(make_permanent, Cmd, Ctx) -> make_permanent(Cmd, Ctx);
execute(rollback, Cmd, Ctx) -> rollback(Cmd, Ctx).

unpack(#{vsn := VsnB}, Ctx) ->
    Vsn = binary_to_list(VsnB),
    #{rels := Rels} = beamdeck_agent_release:releases_info(),
    case [R || #{vsn := V} = R <- Rels, V =:= Vsn] of
        [#{status := S} | _] ->
            {ok, #{action => unpack, vsn => VsnB, alreadyUnpacked => true, status => S,
                   releases => beamdeck_agent_release:rels_json(Rels)}};
        [] ->
            case [N || #{name := N} <- Rels] of
                [] -> {error, not_found, <<"no release is installed on this node">>, null};
                [Name | _] ->
                    Pkg = Name ++ "-" ++ Vsn,
                    Tar = filename:join(beamdeck_agent_release:rel_dir(), Pkg ++ ".tar.gz"),
                    case filelib:is_regular(Tar) of
                        false ->
                            {error, not_found, beamdeck_agent_terms:fmt("no release package ~ts", [Tar]), null};
                        true ->
                            step(Ctx, <<"unpack_release">>, beamdeck_agent_terms:fmt("unpack_release(~0tp)", [Pkg])),
                            case rh(fun() -> release_handler:unpack_release(Pkg) end, ?UNPACK_TIMEOUT) of
                                {ok, Vsn} ->
                                    Copied = ensure_sys_config(Vsn, Rels),
                                    progress(Ctx, <<"unpack_release">>, beamdeck_agent_terms:fmt("unpacked ~ts", [Vsn])),
                                    {ok, #{action => unpack, vsn => VsnB, package => bin(Pkg),
                                           alreadyUnpacked => false, sysConfigCopiedFrom => Copied,
                                           releases => beamdeck_agent_release:rels_json(releases())}};
                                Other ->
                                    {error, unpack_failed,
                                     beamdeck_agent_terms:fmt("release_handler:unpack_release(~0tp) returned ~ts",
                                         [Pkg, text(Other)]), null}
                            end
                    end
            end
    end.

%% release_handler reads releases/VSN/sys.config when it installs; a
%% package without one gets the running release's (none: nothing copied).
ensure_sys_config(Vsn, Rels) ->
    RelDir = beamdeck_agent_release:rel_dir(),
    Target = filename:join([RelDir, Vsn, "sys.config"]),
    Running = case [V || #{vsn := V, status := current} <- Rels] ++
                       [V || #{vsn := V, status := permanent} <- Rels] of
                  [V | _] -> V;
                  [] -> undefined
              end,
    Source = filename:join([RelDir, str(Running), "sys.config"]),
    case Running =/= undefined andalso not filelib:is_regular(Target)
        andalso filelib:is_regular(Source) of
        true ->
            case file:copy(Source, Target) of
                {ok, _} -> bin(Source);
                _ -> null
            end;
        false -> null
    end.

install(#{vsn := VsnB, params := Params} = Cmd, Ctx) ->
    To = binary_to_list(VsnB),
    Rels = releases(),
    case [S || #{vsn := V, status := S} <- Rels, V =:= To] of
        [] ->
            Pkg = filename:join(beamdeck_agent_release:rel_dir(),
                                name(Rels) ++ "-" ++ To ++ ".tar.gz"),
            case filelib:is_regular(Pkg) of
                true -> {error, not_unpacked, beamdeck_agent_terms:fmt("release ~ts is a package (~ts): unpack it first",
                                                   [To, Pkg]), null};
                false -> {error, not_found, beamdeck_agent_terms:fmt("no release ~ts on this node", [To]), null}
            end;
        [S | _] when S =:= current; S =:= permanent ->
            {error, already_installed, beamdeck_agent_terms:fmt("release ~ts is already installed (~ts)", [To, S]), null};
        [_ | _] ->
            case beamdeck_agent_release:step_context(To, Rels) of
                {ok, #{from := From, permanent_step := PermanentStep}} ->
                    Fallback = beamdeck_agent_upgrade_fallback:record(Cmd, From, To),
                    install_path(install, Cmd, Ctx#{fallback => Fallback}, From, To, {Params, strict},
                                 PermanentStep);
                {error, Code, Msg} -> {error, Code, Msg, null}
            end
    end.

install_path(Action, #{vsn := VsnB0} = Cmd, Ctx, From, To, {Params, Mode}, PermanentStep) ->
    VsnB = case VsnB0 of null -> bin(To); _ -> VsnB0 end,
    case beamdeck_agent_release:path(From, To) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, #{script := Orig} = Path} ->
            case beamdeck_agent_relup:choices(Params, Orig, Mode) of
                {error, Code, Msg} -> {error, Code, Msg, null};
                {ok, Choices} ->
                    install_gated(gate(Cmd, (maps:get(params, Cmd, #{}))#{<<"vsn">> => bin(To)}, Ctx),
                                  Action, VsnB, Ctx, From, To, Path, Choices, PermanentStep)
            end
    end.

install_gated({error, _, _, _} = Refused, _Action, _VsnB, _Ctx, _From, _To, _Path, _Choices, _Perm) ->
    Refused;
install_gated({ok, Findings}, Action, VsnB, Ctx, From, To, Path, Choices, PermanentStep) ->
    #{script := Orig, relup_file := File, section := Section} = Path,
    {Script, _} = beamdeck_agent_relup:apply_choices(Orig, Choices),
    Mods = beamdeck_agent_relup:modules(Script),
    ModNames = [M || #{module := M} <- Mods],
    progress(Ctx, <<"preview">>, <<"predicting who dies">>),
    Loops = loops(ModNames),
    Preview = beamdeck_agent_preview:preview(
                Script, #{stage => install, loops => Loops, permanent_step => PermanentStep}),
    Predicted = beamdeck_agent_deaths:predicted(Preview, install),
    Key = case Section of up -> From; down -> To end,
    step(Ctx, <<"rewrite_relup">>, beamdeck_agent_terms:fmt("rewriting ~ts", [File])),
    case beamdeck_agent_relup:rewrite(File, Section, Key, Choices) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, #{changes := Changes, orig := OrigFile}} ->
            progress(Ctx, <<"rewrite_relup">>,
                     beamdeck_agent_terms:fmt("~b purge setting(s) changed; original kept in ~ts",
                         [length(Changes), OrigFile])),
            RelupJson = #{file => bin(File), original => bin(OrigFile), section => Section,
                          changes => [beamdeck_agent_relup:change_json(C) || C <- Changes],
                          script => beamdeck_agent_relup_read:script_json(Script, 300)},
            Base = #{action => Action, vsn => VsnB, from => bin(From), to => bin(To),
                     direction => maps:get(direction, Path),
                     choices => beamdeck_agent_relup:choices_json(Choices),
                     modules => [atom_to_binary(M, utf8) || M <- ModNames],
                     relup => RelupJson},
            Lone = beamdeck_agent_check_verify:lone_pids(Findings),
            check_and_install(Ctx, To, File, Script, ModNames, Predicted,
                              {beamdeck_agent_deaths:watch_pids(Preview), Lone}, Base)
    end.

check_and_install(Ctx, To, File, Script, ModNames, Predicted, {Watch, Lone}, Base) ->
    step(Ctx, <<"check_install_release">>, beamdeck_agent_terms:fmt("check_install_release(~0tp)", [To])),
    case rh(fun() -> release_handler:check_install_release(To) end, ?STEP_TIMEOUT) of
        {ok, _, _} ->
            progress(Ctx, <<"check_install_release">>, <<"check_install_release ok">>),
            case beamdeck_agent_upgrade_fallback:prepare(Ctx) of
                ok -> install_release(Ctx, To, File, Script, ModNames, Predicted, {Watch, Lone}, Base);
                {error, Why} ->
                    _ = beamdeck_agent_relup:restore(File),
                    {error, fallback_failed, <<"the fallback timer could not be journaled (nothing was "
                                               "installed): ", Why/binary>>, Base#{check => ok}}
            end;
        {error, {old_processes, M}} ->
            _ = beamdeck_agent_relup:restore(File),
            {error, old_processes,
             beamdeck_agent_terms:fmt("check_install_release: processes run old code of ~ts and its pre-purge is soft: "
                 "install_release would change nothing (the relup was put back as it was)", [M]),
             Base#{check => text({error, {old_processes, M}}),
                   oldCode => beamdeck_agent_old_code:old_code(ModNames)}};
        Other ->
            _ = beamdeck_agent_relup:restore(File),
            {error, check_failed, beamdeck_agent_terms:fmt("check_install_release(~0tp) returned ~ts (the relup was put "
                                      "back as it was)", [To, text(Other)]),
             Base#{check => text(Other)}}
    end.

install_release(Ctx, To, File, Script, ModNames, Predicted, {Watch, Lone}, Base) ->
    step(Ctx, <<"install_release">>, beamdeck_agent_terms:fmt("install_release(~0tp)", [To])),
    Mon = beamdeck_agent_deaths:watch(lists:usort(Watch ++ [P || {P, _} <- Lone])),
    Res = rh(fun() -> release_handler:install_release(To) end, ?STEP_TIMEOUT),
    Deaths = beamdeck_agent_deaths:deaths(Mon, Predicted),
    Result = Base#{check => ok, installReply => text(Res), deaths => Deaths,
                   oldCode => beamdeck_agent_old_code:old_code(ModNames),
                   verification => verify(maps:get(action, Base), maps:get(from, Base), To,
                                          Lone, Deaths),
                   releases => beamdeck_agent_release:rels_json(releases())},
    Restart = beamdeck_agent_relup:restarts(Script),
    case Res of
        {ok, FromVsn, _Descr} when Restart =:= none ->
            progress(Ctx, <<"install_release">>, beamdeck_agent_terms:fmt("installed ~ts (from ~ts)", [To, FromVsn])),
            {ok, beamdeck_agent_upgrade_fallback:arm(Ctx, Result)};
        {Ok, _, _} when Ok =:= ok; Ok =:= continue_after_restart ->
            %% release_handler reboots the node now. The journal keeps
            %% the step running: the outcome is inferred after the
            %% reboot, from the release statuses.
            step(Ctx, <<"restarting">>, beamdeck_agent_terms:fmt("~ts: the node restarts to finish the install", [Restart])),
            timer:sleep(?REBOOT_WAIT),
            {ok, Result#{restarting => true}};
        {error, {old_processes, M}} ->
            _ = beamdeck_agent_relup:restore(File),
            {error, old_processes,
             beamdeck_agent_terms:fmt("install_release: processes run old code of ~ts (soft pre-purge): nothing "
                 "was installed", [M]), Result};
        Other ->
            {error, install_failed, beamdeck_agent_terms:fmt("install_release(~0tp) returned ~ts", [To, text(Other)]),
             Result}
    end.

make_permanent(#{vsn := VsnB} = Cmd, Ctx) ->
    Vsn = binary_to_list(VsnB),
    Rels = releases(),
    case {[S || #{vsn := V, status := S} <- Rels, V =:= Vsn], beamdeck_agent_release:step_context(Vsn, Rels)} of
        {[current], {ok, #{step := make_permanent, from := Permanent}}} ->
            case gate(Cmd, #{<<"vsn">> => VsnB}, Ctx) of
                {ok, _} ->
                    permanent_step(Ctx, Permanent, Vsn, #{action => make_permanent, vsn => VsnB},
                                   installed_lone(VsnB, maps:get(journal, Ctx, [])));
                Refused -> Refused
            end;
        {[permanent], _} ->
            {error, already_permanent, beamdeck_agent_terms:fmt("release ~ts is already permanent", [Vsn]), null};
        {[S], _} ->
            {error, bad_status, beamdeck_agent_terms:fmt("release ~ts is ~ts: install it first", [Vsn, S]), null};
        {[], _} ->
            {error, not_found, beamdeck_agent_terms:fmt("no release ~ts on this node", [Vsn]), null}
    end.

%% make_permanent brutally purges the brutal_purge modules of the script
%% as installed: exactly the processes on their old code die. `Lone': the
%% processes the install's plan found unreachable (verified again).
permanent_step(Ctx, Permanent, Vsn, Base, Lone) ->
    {Script, Mods} = case beamdeck_agent_release:path(Permanent, Vsn) of
                         {ok, #{on_disk := S}} -> {S, beamdeck_agent_relup:modules(S)};
                         _ -> {[], []}
                     end,
    ModNames = [M || #{module := M} <- Mods],
    Preview = beamdeck_agent_preview:preview(Script, #{stage => make_permanent}),
    Predicted = beamdeck_agent_deaths:predicted(Preview, make_permanent),
    Before = beamdeck_agent_old_code:old_code(ModNames),
    step(Ctx, <<"make_permanent">>, beamdeck_agent_terms:fmt("make_permanent(~0tp)", [Vsn])),
    Mon = beamdeck_agent_deaths:watch(lists:usort(beamdeck_agent_deaths:watch_pids(Preview)
                                                  ++ [P || {P, _} <- Lone, is_process_alive(P)])),
    Res = rh(fun() -> release_handler:make_permanent(Vsn) end, ?STEP_TIMEOUT),
    Deaths = beamdeck_agent_deaths:deaths(Mon, Predicted),
    Result = Base#{modules => [atom_to_binary(M, utf8) || M <- ModNames],
                   permanentReply => text(Res), deaths => Deaths, oldCodeBefore => Before,
                   oldCode => beamdeck_agent_old_code:old_code(ModNames),
                   verification => verify(make_permanent, Permanent, Vsn, Lone, Deaths),
                   releases => beamdeck_agent_release:rels_json(releases())},
    case Res of
        ok ->
            progress(Ctx, <<"make_permanent">>, beamdeck_agent_terms:fmt("~ts is permanent", [Vsn])),
            {ok, Result};
        Other ->
            {error, make_permanent_failed, beamdeck_agent_terms:fmt("make_permanent(~0tp) returned ~ts", [Vsn, text(Other)]),
             Result}
    end.

%% Back to the previous release through the relup's downgrade script: the
%% permanent one when the current release is not permanent yet, else the
%% `vsn' given. Without purge params, the choices of the install being
%% rolled back are used again (for the modules the downgrade changes).
rollback(#{vsn := VsnB, params := Params} = Cmd, Ctx) ->
    Rels = releases(),
    Current = beamdeck_agent_release:status_vsn(current, Rels),
    Permanent = beamdeck_agent_release:status_vsn(permanent, Rels),
    Target = case {VsnB, Current} of
                 {null, undefined} -> undefined;
                 {null, _} -> Permanent;
                 {_, _} -> binary_to_list(VsnB)
             end,
    Running = case Current of undefined -> Permanent; _ -> Current end,
    if
        Target =:= undefined ->
            {error, bad_request, <<"nothing to roll back to: the running release is permanent; "
                                   "give the version to go back to (params.vsn)">>, null};
        Target =:= Running ->
            {error, bad_request, beamdeck_agent_terms:fmt("release ~ts is the running release", [Target]), null};
        true ->
            case beamdeck_agent_release:step_context(Target, Rels) of
                {ok, #{from := From, permanent_step := PermanentStep}} ->
                    rollback_from(Cmd, Ctx, Params, From, Target, PermanentStep);
                {error, Code, Msg} -> {error, Code, Msg, null}
            end
    end.

rollback_from(Cmd, Ctx, Params, From, Target, PermanentStep) ->
    {Choices, Mode} =
        case maps:is_key(<<"purge">>, Params) orelse maps:is_key(<<"prePurge">>, Params) of
            true -> {Params, strict};
            false -> {maps:get(bin(From), choices_by_vsn(maps:get(journal, Ctx, [])), #{}), lenient}
        end,
    case install_path(rollback, Cmd#{vsn := bin(Target)}, Ctx, From, Target,
                      {Choices, Mode}, PermanentStep) of
        {ok, Result} ->
            %% Back on a release that is installed but not permanent: its
            %% make_permanent follows at once.
            case beamdeck_agent_release:step_context(Target, releases()) of
                {ok, #{step := make_permanent, from := P2}} ->
                    case permanent_step(Ctx, P2, Target, #{}, []) of
                        {ok, R2} -> {ok, Result#{makePermanent => R2}};
                        {error, Code, Msg, R2} -> {error, Code, Msg, Result#{makePermanent => R2}}
                    end;
                _ -> {ok, Result}
            end;
        Error -> Error
    end.

%% The step's gate, right before it acts: the plan recomputed now (the same
%% computation as the upgrade_plan request) against what the command
%% accepts (beamdeck_agent_gate:check/3).
gate(Cmd, PlanParams, Ctx) ->
    progress(Ctx, <<"gate">>, <<"recomputing the plan to check it against the accepted one">>),
    Opts = #{rollback_choices => choices_by_vsn(maps:get(journal, Ctx, []))},
    case beamdeck_agent_plan:plan_facts(PlanParams, Opts) of
        {error, Code, Msg} -> {error, Code, Msg, null};
        {ok, Json, Facts} ->
            Gate = maps:get(gate, Cmd, #{plan => null, max_kills => null, findings => []}),
            Reviewed = case maps:get(plan, Gate) of
                           null -> none;
                           Digest -> beamdeck_agent_upgrade:reviewed(Digest)
                       end,
            case beamdeck_agent_gate:check(Gate, Facts, Reviewed) of
                ok -> {ok, maps:get(findings, Json, [])};
                {error, Code, Msg, Detail} -> {error, Code, Msg, #{gate => Detail}}
            end
    end.

%% The step's verification (beamdeck_agent_check_verify), with the exit
%% reasons of the watched processes the step saw die (or the agent saw die
%% since the install); each kind of miss is also an event.
verify(Step, From, To, Lone, Deaths) ->
    Seen = maps:merge(beamdeck_agent_upgrade:lone_deaths(),
                      maps:from_list([{Pid, R} || K <- [predictedAndDied, diedUnpredicted],
                                                  #{pid := Pid, reason := R} <- maps:get(K, Deaths, [])])),
    V = beamdeck_agent_check_verify:run(
          From, To, [{P, M, maps:get(beamdeck_agent_terms:pid(P), Seen, null)} || {P, M} <- Lone]),
    _ = [beamdeck_agent_events:notify(E) || E <- beamdeck_agent_check_verify:events(Step, bin(To), V)],
    V.

%% The processes the verification of the newest install of `VsnB' watched.
installed_lone(VsnB, Entries) ->
    case [Ps || #{action := install, vsn := V, ok := true,
                  result := #{verification := #{processes := Ps}}} <- Entries, V =:= VsnB] of
        [Ps | _] ->
            [{Pid, M} || #{pid := P, module := M} <- Ps,
                         Pid <- [try list_to_pid(binary_to_list(P)) catch error:badarg -> none end],
                         is_pid(Pid)];
        [] -> []
    end.

%% @doc Version → the purge params (binary-keyed, as received) of its newest
%% successful install (journal entries, newest first).
-spec choices_by_vsn(Entries) -> #{binary() => map()} when Entries :: [map()].
choices_by_vsn(Entries) ->
    lists:foldr(fun(#{action := install, vsn := V, ok := true, params := P}, Acc) when is_binary(V) ->
                        Acc#{V => P};
                   (_, Acc) -> Acc
                end, #{}, Entries).

loops(Mods) ->
    beamdeck_agent_preview:loops(maps:from_list([{M, beamdeck_agent_lint:analyze_loaded(M)}
                                                 || M <- Mods, erlang:module_loaded(M)])).

%%% HELPERS %%%

%% release_handler calls in a helper with a (long) timeout; release_handler
%% itself is not interrupted when the caller gives up.
rh(Fun, Timeout) ->
    case beamdeck_agent_otp:call(Fun, Timeout) of
        {ok, Res} -> Res;
        {error, timeout} -> {error, {no_answer_from_release_handler, Timeout}};
        {error, Other} -> {error, Other}
    end.

step(#{id := Id} = Ctx, Step, Message) ->
    beamdeck_agent_upgrade:step_reached(Id, Step),
    progress(Ctx, Step, Message).

progress(#{id := Id, sink := Sink}, Step, Message) ->
    try Sink(#{type => progress, commandId => Id, step => Step, message => Message,
               at => beamdeck_agent_terms:now_ms()})
    catch _:_ -> ok
    end,
    ok.

releases() ->
    maps:get(rels, beamdeck_agent_release:releases_info()).

name(Rels) ->
    case Rels of
        [#{name := N} | _] -> N;
        [] -> "release"
    end.

str(undefined) -> "";
str(S) -> S.

bin(S) when is_list(S) -> unicode:characters_to_binary(S);
bin(B) when is_binary(B) -> B.

text(T) -> beamdeck_agent_terms:text(T, 2000).

