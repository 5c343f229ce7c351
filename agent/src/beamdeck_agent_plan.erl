%%% @doc The plan of an upgrade step (the `upgrade_plan' request): the
%%% step release_handler would run next (beamdeck_agent_release:step_context/2),
%%% the relup with the operator's purge choices, every process's fate
%%% (beamdeck_agent_preview), the lint of the changed modules, findings, the
%%% verdict and the digest the gate checks (beamdeck_agent_gate).
-module(beamdeck_agent_plan).

-export([plan_facts/2]).

-define(MAX_KILLED_PIDS, 20000).
-define(MAX_SCRIPT, 300).
-define(TARGET_LINT_BUDGET_MS, 3000).

%%% PLAN (the upgrade_plan request) %%%

%% @doc The `upgrade_plan' request: `params.vsn' (the target), `purge' and
%% `prePurge' (module → "soft" | "brutal"), and the facts its digest covers
%% (beamdeck_agent_gate): what the runner checks a step's gate against. The
%% step it previews is beamdeck_agent_release:step_context/2's. Option
%% `rollback_choices' (version → purge params of its install) is used for a
%% rollback from that version when the request gives no purge params, as
%% the rollback command does.
-spec plan_facts(Params, Opts) -> {ok, map(), beamdeck_agent_gate:facts()} | {error, atom(), binary()}
    when Params :: map(), Opts :: map().
plan_facts(Params, Opts) ->
    case maps:get(<<"vsn">>, Params, undefined) of
        Vsn when is_binary(Vsn), byte_size(Vsn) > 0, byte_size(Vsn) < 256 ->
            plan_vsn(binary_to_list(Vsn), Params, Opts);
        _ -> {error, bad_request, <<"params.vsn must be a release version string">>}
    end.

plan_vsn(Vsn, Params, Opts) ->
    #{rels := Rels} = beamdeck_agent_release:releases_info(),
    case beamdeck_agent_release:step_context(Vsn, Rels) of
        {ok, #{step := make_permanent, from := Permanent}} ->
            permanent_plan(Permanent, Vsn);
        {ok, #{step := Action, from := Running, permanent_step := PermanentStep}} ->
            Given = maps:is_key(<<"purge">>, Params) orelse maps:is_key(<<"prePurge">>, Params),
            Recorded = maps:get(unicode:characters_to_binary(Running),
                                maps:get(rollback_choices, Opts, #{}), undefined),
            Choices = case {Action, Given, Recorded} of
                          {rollback, false, #{}} -> {Recorded, lenient};
                          _ -> {Params, strict}
                      end,
            install_plan(Action, Running, Vsn, Choices, PermanentStep);
        {error, _, _} = E -> E
    end.

install_plan(Action, From, To, {Params, Mode}, PermanentStep) ->
    case beamdeck_agent_release:path(From, To) of
        {ok, #{script := Orig} = Path} ->
            case beamdeck_agent_relup:choices(Params, Orig, Mode) of
                {ok, Choices} ->
                    {Script, Changes} = beamdeck_agent_relup:apply_choices(Orig, Choices),
                    Mods = beamdeck_agent_relup:modules(Script),
                    {Loops, Lint} = lint(Mods, Path, install),
                    Preview = beamdeck_agent_preview:preview(Script, #{stage => install, loops => Loops,
                                                permanent_step => PermanentStep}),
                    plan_json(Action, Path, Script, Changes, Choices, Preview, Lint);
                {error, _, _} = E -> E
            end;
        {error, _, _} = E -> E
    end.

%% After install: the script as installed (the relup on disk), and the
%% exact processes on old code.
permanent_plan(Permanent, Current) ->
    case beamdeck_agent_release:path(Permanent, Current) of
        {ok, #{on_disk := Script} = Path} ->
            Mods = beamdeck_agent_relup:modules(Script),
            {Loops, Lint} = lint(Mods, Path, make_permanent),
            Preview = beamdeck_agent_preview:preview(Script, #{stage => make_permanent, loops => Loops,
                                        permanent_step => true}),
            Changes = beamdeck_agent_relup:diff(maps:get(script, Path), Script),
            Choices = #{pre => maps:from_list([{M, To} || #{module := M, field := prePurge, to := To} <- Changes]),
                        post => maps:from_list([{M, To} || #{module := M, field := postPurge, to := To} <- Changes])},
            plan_json(make_permanent, Path, Script, Changes, Choices, Preview, Lint);
        {error, _, _} = E -> E
    end.

plan_json(Action, Path, Script, Changes, Choices, Preview, {Lint, LintErrors}) ->
    #{modules := Modules, restart := Restart, scan := Scan, apps := Apps} = Preview,
    Pids = pid_frames(Modules),
    LintJson = [J || #{module := MB, function := FB, arity := A} = L <- Lint,
                     J <- [L#{pids => [beamdeck_agent_terms:pid(P)
                                       || P <- maps:get({binary_to_existing_atom(MB, utf8), FB, A},
                                                        Pids, [])]}],
                     maps:get(evidence, J) =/= null orelse maps:get(pids, J) =/= []],
    {ModsJson, Counts} = beamdeck_agent_preview:modules_json(Modules),
    %% The checks beyond purges (issue 13), gathered in one place.
    Findings = findings(Restart) ++ beamdeck_agent_lint:unavailable_findings(LintErrors, Pids)
        ++ beamdeck_agent_checks:run(Action, Path, Script),
    Facts = facts(Action, Script, Modules, Findings),
    Json = #{action => Action, vsn => bin(maps:get(to, Path)), from => bin(maps:get(from, Path)),
      to => bin(maps:get(to, Path)), direction => maps:get(direction, Path),
      name => bin(maps:get(name, Path)), relupFile => bin(maps:get(relup_file, Path)),
      choices => beamdeck_agent_relup:choices_json(Choices),
      relup => #{original => beamdeck_agent_relup_read:script_json(maps:get(script, Path), ?MAX_SCRIPT),
                 rewritten => beamdeck_agent_relup_read:script_json(Script, ?MAX_SCRIPT),
                 instructions => length(Script),
                 changes => [beamdeck_agent_relup:change_json(C) || C <- Changes]},
      restart => case Restart of none -> null; R -> R end,
      nodeFate => node_fate(Restart),
      modules => ModsJson, applications => Apps, counts => Counts,
      impact => impact(Restart, Counts), verdict => verdict(Counts, Findings),
      findings => Findings, digest => beamdeck_agent_gate:digest(Facts), step => Action,
      lint => LintJson, lintErrors => LintErrors,
      killed => killed_json(Modules),
      truncated => lists:any(fun(#{truncated := T}) -> T end, ModsJson), scan => Scan,
      at => beamdeck_agent_terms:now_ms()},
    {ok, Json, Facts}.

%% What the plan's digest covers (beamdeck_agent_gate): the purge settings
%% as the script applies them (an explicit choice equal to the relup's own
%% setting is the same plan), every pid each step kills (not only the
%% listed ones), the blocking pids, the error findings.
facts(Action, Script, Modules, Findings) ->
    Entries = [E || #{entries := Es} <- Modules, E <- Es],
    Pids = fun(Fate, When) ->
                   lists:usort([beamdeck_agent_terms:pid(P)
                                || #{pid := P, fate := F, 'when' := W} <- Entries,
                                   F =:= Fate, W =:= When orelse When =:= any])
           end,
    #{node => beamdeck_agent_config:node_name(),
      boot_id => try beamdeck_agent_config:boot_id() catch _:_ -> null end,
      step => Action,
      choices => lists:usort([{atom_to_binary(M, utf8), Pre, Post}
                              || #{module := M, pre := Pre, post := Post}
                                     <- beamdeck_agent_relup:modules(Script)]),
      killed => #{install => Pids(killed, install), make_permanent => Pids(killed, make_permanent)},
      blocked => Pids(blocks_install, any),
      error_ids => beamdeck_agent_findings:error_ids(Findings)}.

%% The plan's findings (beamdeck_agent_findings). A relup that restarts the
%% emulator stops every process on the node: an error, accepted by name.
findings(none) -> [];
findings(Restart) ->
    [beamdeck_agent_findings:new(
       emulator_restart, null, atom_to_binary(Restart, utf8), [],
       beamdeck_agent_terms:fmt("the relup contains ~ts: install_release restarts the emulator, so every process on "
           "the node stops and the node boots the new release", [Restart]),
       <<"accept it if a restart of the node is what you want (--accept-finding), or build the "
         "release so that it needs no emulator restart">>)].

%% Every pid predicted to be killed, per step, beyond the listing cap: the
%% server records them as the expected kills of the step (pids only, so
%% even 20k of them stay well inside a frame).
killed_json(Modules) ->
    All = lists:usort([{W, P} || #{entries := Es} <- Modules,
                                 #{pid := P, fate := killed, 'when' := W} <- Es]),
    maps:from_list([{When, [beamdeck_agent_terms:pid(P)
                            || {W, P} <- lists:sublist(All, ?MAX_KILLED_PIDS), W =:= When]}
                    || When <- [install, make_permanent]]).

node_fate(none) -> null;
node_fate(R) ->
    #{fate => node_restarts, 'when' => install,
      why => beamdeck_agent_terms:fmt("the relup contains ~ts: install_release restarts the emulator, so every "
                 "process on the node stops and the node boots the new release", [R])}.

%% The gate's verdict, worst first (the CLI's exit codes follow it).
verdict(#{blocks_install := B}, _) when B > 0 -> blocked;
verdict(Counts, Findings) ->
    case {beamdeck_agent_findings:error_ids(Findings), Counts} of
        {[_ | _], _} -> error_findings;
        {[], #{killed := K}} when K > 0 -> would_kill;
        _ -> safe
    end.

%% The finer impact the dashboard shows.
impact(Restart, _) when Restart =/= none -> restarts;
impact(_, #{blocks_install := B}) when B > 0 -> blocked;
impact(_, #{killed := K}) when K > 0 -> kills;
impact(_, #{stays_on_old_code := S, badfun_on_next_call := F, may_migrate := M})
  when S + F + M > 0 -> at_risk;
impact(_, _) -> safe.

%% Lint of every changed module: the loaded code (its loops decide who is
%% stuck) and, for an install, the target version's code.
lint(Mods, Path, Stage) ->
    Beams = case Stage of
                install -> beamdeck_agent_release:target_beams(Path, [M || #{module := M, op := load} <- Mods]);
                make_permanent -> #{}
            end,
    %% The loaded code decides who is stuck: always read. The target's is
    %% advice: read within a time budget (large relups, cold cache).
    Deadline = erlang:monotonic_time(millisecond) + ?TARGET_LINT_BUDGET_MS,
    Results = [{M, loaded_lint(M), target_lint(maps:get(M, Beams, none), M, Deadline)}
               || #{module := M} <- Mods],
    Loops = beamdeck_agent_preview:loops(maps:from_list([{M, L} || {M, L, _} <- Results])),
    Merged = lists:append([merge_findings(M, L, T) || {M, L, T} <- Results]),
    {Loops, {[F || F <- Merged, not maps:is_key(error, F)], [E || E <- Merged, maps:is_key(error, E)]}}.

loaded_lint(M) ->
    case erlang:module_loaded(M) of
        true -> beamdeck_agent_lint:analyze_loaded(M);
        false -> {error, beamdeck_agent_terms:fmt("~ts is not loaded", [M])}
    end.

target_lint({ok, Bin}, M, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> beamdeck_agent_lint:analyze(M, Bin);
        false -> {error, beamdeck_agent_terms:fmt("~ts: the target version was not linted (time budget of this plan spent)", [M])}
    end;
target_lint({error, _} = E, _M, _Deadline) -> E;
target_lint(none, _M, _Deadline) -> none.

merge_findings(M, Loaded, Target) ->
    %% Quiet loops (pure recursions) come along; plan_json keeps them only
    %% when a live process sits in one.
    %% Pins (a frame waiting on a loop) come along too: the lint names them.
    All = fun(A) -> beamdeck_agent_lint:findings(A) ++ beamdeck_agent_lint:quiet(A)
                        ++ beamdeck_agent_lint:pin_findings(A) end,
    L = [{key(F), F} || {ok, A} <- [Loaded], F <- All(A)],
    T = [{key(F), F} || {ok, A} <- [Target],
                        F <- beamdeck_agent_lint:findings(A) ++ beamdeck_agent_lint:pin_findings(A)],
    Keys = lists:usort([K || {K, _} <- L ++ T]),
    Found = [begin
                 F = proplists:get_value(K, L, proplists:get_value(K, T)),
                 Vs = [loaded || lists:keymember(K, 1, L)] ++ [target || lists:keymember(K, 1, T)],
                 (beamdeck_agent_lint:finding_json(F))#{versions => Vs}
             end || K <- Keys],
    Errors = [#{module => atom_to_binary(M, utf8), version => V, error => E}
              || {V, {error, E}} <- [{loaded, Loaded}, {target, Target}]],
    Found ++ Errors.

key(#{function := F, arity := A}) -> {F, A}.

%% Which live processes have each module function on their stack.
pid_frames(Modules) ->
    lists:foldl(fun(#{module := M, entries := Es}, Acc) ->
                        lists:foldl(fun(#{pid := P, frames := Fs}, A2) ->
                                            lists:foldl(fun({FB, Ar}, A3) ->
                                                                K = {M, FB, Ar},
                                                                maps:update_with(K, fun(L) -> [P | L] end, [P], A3)
                                                        end, A2, lists:usort(Fs))
                                    end, Acc, Es)
                end, #{}, Modules).

bin(S) -> unicode:characters_to_binary(S).

%%% HELPERS %%%

