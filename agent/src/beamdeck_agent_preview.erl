%%% @doc Impact preview of an upgrade step, computed on the live node.
%%%
%%% For every module a relup script loads or removes, every process that
%%% references the module's code gets a fate and the reason for it:
%%%
%%% - `killed' (`when': `install' or `make_permanent'): on lingering old
%%%   code with a brutal pre-purge; or stuck in a local-recursion loop of
%%%   the current code with a brutal post-purge; or purged by a `purge'
%%%   instruction during install.
%%% - `blocks_install': on lingering old code with a soft pre-purge
%%%   (`install_release' returns `{error, {old_processes, M}}').
%%% - `stays_on_old_code': stuck in a loop with a soft post-purge (or a
%%%   rollback to the permanent release, where no make_permanent runs).
%%% - `suspended': suspended by release_handler for `{update, M}' (its
%%%   supervisor child spec lists M); code_change/3 only with `{advanced, _}'.
%%% - `may_migrate': M's functions are on its stack, none in a loop: it
%%%   reaches the new code once those calls return.
%%% - `badfun_on_next_call': holds a fun of M. Purging ignores funs (ERTS
%%%   9+), so the process lives on and gets `badfun' when it next calls it.
%%% - `unaffected': mentions M only as data (e.g. its callback module).
%%%
%%% One pass over all processes, split over a few linked workers: the full
%%% backtrace of each (`process_info(P, backtrace)', not the 8-frame
%%% stacktrace) is matched against one compiled pattern of all module names;
%%% only backtraces that match are parsed. `erlang:check_process_code/2' runs
%%% only for modules that have old code. The workers are linked to the
%%% caller, so a request worker killed on timeout takes them with it.
-module(beamdeck_agent_preview).

-export([plan/1, plan/2, plan_facts/2, preview/2, scan/2, old_code/1, supervised/2, process_json/1,
         parse_backtrace/2]).

-define(MAX_LISTED, 400).
-define(MAX_KILLED_PIDS, 20000).
-define(MAX_SCRIPT, 300).
-define(TARGET_LINT_BUDGET_MS, 3000).
-define(SCAN_TIMEOUT, 25000).
-define(SUP_BUDGET_MS, 3000).
-define(CALL_TIMEOUT, 1000).
-define(MAX_SUP_CHILDREN, 200000).
-define(FRAME_RE, "\\((?:'((?:[^'\\\\]|\\\\.)+)'|([a-z][A-Za-z0-9_@]*)):('(?:[^'\\\\]|\\\\.)+'|[a-z][A-Za-z0-9_@]*)/([0-9]+) \\+ [0-9]+\\)").

-type fate() :: killed | blocks_install | stays_on_old_code | suspended | may_migrate
              | badfun_on_next_call | unaffected.
-type ref() :: #{frames := [{binary(), arity()}], holds_fun := boolean(), mention := boolean()}.
-type entry() :: #{pid := pid(), fate := fate(), 'when' := install | make_permanent | null,
                   why := binary(), frames := [{binary(), arity()}], holds_fun := boolean()}.
-export_type([fate/0, entry/0]).

%%% PLAN (the upgrade_plan request) %%%

%% @doc The `upgrade_plan' request: `params.vsn' (the target), `purge' and
%% `prePurge' (module → "soft" | "brutal"). The step it previews follows
%% from the release statuses: `install' (or `rollback', an install of the
%% permanent release through the downgrade script) when the target is not
%% the running release; `make_permanent' when the target is installed and
%% running but not yet permanent.
-spec plan(Params) -> {ok, map()} | {error, atom(), binary()} when Params :: map().
plan(Params) -> plan(Params, #{}).

%% @doc plan/1 with options: `rollback_choices' (version → purge params of
%% its install), used for a rollback from that version when the request
%% gives no purge params, as the rollback command does.
-spec plan(Params, Opts) -> {ok, map()} | {error, atom(), binary()}
    when Params :: map(), Opts :: map().
plan(Params, Opts) ->
    case plan_facts(Params, Opts) of
        {ok, Json, _Facts} -> {ok, Json};
        {error, _, _} = E -> E
    end.

%% @doc plan/2, and the facts its digest covers (beamdeck_agent_gate): what
%% the runner checks a step's gate against.
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
    Current = status_vsn(current, Rels),
    Permanent = status_vsn(permanent, Rels),
    Running = case Current of undefined -> Permanent; _ -> Current end,
    if
        Running =:= undefined ->
            {error, not_found, <<"no release is running (release_handler knows no current or permanent release)">>};
        Vsn =:= Running, Current =/= undefined, Permanent =/= undefined ->
            permanent_plan(Permanent, Vsn);
        Vsn =:= Running ->
            {error, already_permanent, fmt("release ~ts is already running and permanent", [Vsn])};
        true ->
            Action = case Vsn =:= Permanent of true -> rollback; false -> install end,
            Given = maps:is_key(<<"purge">>, Params) orelse maps:is_key(<<"prePurge">>, Params),
            Recorded = maps:get(unicode:characters_to_binary(Running),
                                maps:get(rollback_choices, Opts, #{}), undefined),
            Choices = case {Action, Given, Recorded} of
                          {rollback, false, #{}} -> {Recorded, lenient};
                          _ -> {Params, strict}
                      end,
            install_plan(Action, Running, Vsn, Choices, Vsn =/= Permanent)
    end.

status_vsn(Status, Rels) ->
    case [V || #{vsn := V, status := S} <- Rels, S =:= Status] of
        [V | _] -> V;
        [] -> undefined
    end.

install_plan(Action, From, To, {Params, Mode}, PermanentStep) ->
    case beamdeck_agent_release:path(From, To) of
        {ok, #{script := Orig} = Path} ->
            case beamdeck_agent_relup:choices(Params, Orig, Mode) of
                {ok, Choices} ->
                    {Script, Changes} = beamdeck_agent_relup:apply_choices(Orig, Choices),
                    Mods = beamdeck_agent_relup:modules(Script),
                    {Loops, Lint} = lint(Mods, Path, install),
                    Preview = preview(Script, #{stage => install, loops => Loops,
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
            Preview = preview(Script, #{stage => make_permanent, loops => Loops,
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
    {ModsJson, Counts} = modules_json(Modules),
    Findings = findings(Restart),
    Facts = facts(Action, Script, Modules, Findings),
    Json = #{action => Action, vsn => bin(maps:get(to, Path)), from => bin(maps:get(from, Path)),
      to => bin(maps:get(to, Path)), direction => maps:get(direction, Path),
      name => bin(maps:get(name, Path)), relupFile => bin(maps:get(relup_file, Path)),
      choices => beamdeck_agent_relup:choices_json(Choices),
      relup => #{original => beamdeck_agent_release:script_json(maps:get(script, Path), ?MAX_SCRIPT),
                 rewritten => beamdeck_agent_release:script_json(Script, ?MAX_SCRIPT),
                 instructions => length(Script),
                 changes => [change_json(C) || C <- Changes]},
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
       fmt("the relup contains ~ts: install_release restarts the emulator, so every process on "
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

change_json(#{module := M, field := F, from := From, to := To}) ->
    #{module => atom_to_binary(M, utf8), field => F,
      from => beamdeck_agent_release:purge_json(From), to => beamdeck_agent_release:purge_json(To)}.

node_fate(none) -> null;
node_fate(R) ->
    #{fate => node_restarts, 'when' => install,
      why => fmt("the relup contains ~ts: install_release restarts the emulator, so every "
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
    Loops = maps:from_list([{M, case L of
                                    {ok, A} -> [{atom_to_binary(F, utf8), Ar}
                                                || {F, Ar} <- beamdeck_agent_lint:loops(A)];
                                    {error, _} -> unknown
                                end} || {M, L, _} <- Results]),
    Merged = lists:append([merge_findings(M, L, T) || {M, L, T} <- Results]),
    {Loops, {[F || F <- Merged, not maps:is_key(error, F)], [E || E <- Merged, maps:is_key(error, E)]}}.

loaded_lint(M) ->
    case erlang:module_loaded(M) of
        true -> beamdeck_agent_lint:analyze_loaded(M);
        false -> {error, fmt("~ts is not loaded", [M])}
    end.

target_lint({ok, Bin}, M, Deadline) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> beamdeck_agent_lint:analyze(M, Bin);
        false -> {error, fmt("~ts: the target version was not linted (time budget of this plan spent)", [M])}
    end;
target_lint({error, _} = E, _M, _Deadline) -> E;
target_lint(none, _M, _Deadline) -> none.

merge_findings(M, Loaded, Target) ->
    %% Quiet loops (pure recursions) come along; plan_json keeps them only
    %% when a live process sits in one.
    All = fun(A) -> beamdeck_agent_lint:findings(A) ++ beamdeck_agent_lint:quiet(A) end,
    L = [{key(F), F} || {ok, A} <- [Loaded], F <- All(A)],
    T = [{key(F), F} || {ok, A} <- [Target], F <- beamdeck_agent_lint:findings(A)],
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

%%% PREVIEW %%%

%% @doc Fates for every module `Script' loads or removes. Options:
%% `stage' (`install' | `make_permanent'), `loops' (module → the
%% `{FunctionText, Arity}' in local-recursion loops of its loaded code, or
%% `unknown'), `permanent_step' (false for a rollback to the permanent
%% release: no make_permanent purge follows), `exclude' (pids to skip).
-spec preview(Script, Opts) -> #{modules := [map()], restart := atom(), scan := map(),
                                 apps := [map()]}
    when Script :: list(), Opts :: map().
preview(Script, Opts) ->
    Stage = maps:get(stage, Opts, install),
    Mods = beamdeck_agent_relup:modules(Script),
    Restart = beamdeck_agent_relup:restarts(Script),
    Names = [M || #{module := M} <- Mods],
    OldMods = [M || M <- lists:usort(Names), erlang:check_old_code(M)],
    StopApps = case Stage of
                   install -> beamdeck_agent_relup:stopped_apps(Script);
                   make_permanent -> []
               end,
    Masters = [{App, Pid} || App <- StopApps,
                             Pid <- [application_controller:get_master(App)], is_pid(Pid)],
    Scan = scan(Names, #{old => OldMods, group_leaders => [P || {_, P} <- Masters],
                         exclude => maps:get(exclude, Opts, [])}),
    Suspend = case [M || #{suspend := true, module := M} <- Mods] of
                  [] -> #{};
                  SMods when Stage =:= install -> supervised(SMods, ?SUP_BUDGET_MS);
                  _ -> #{}
              end,
    Ctx = #{stage => Stage, loops => maps:get(loops, Opts, #{}), scan => Scan,
            suspend => Suspend, restart => Restart,
            permanent_step => maps:get(permanent_step, Opts, true)},
    Modules = [classify_module(Mi, Ctx) || Mi <- Mods],
    Apps = [#{app => App, action => stop,
              processes => [process_json(#{pid => P, fate => stopped, 'when' => install,
                                           why => fmt("application ~ts is stopped during install", [App]),
                                           frames => [], holds_fun => false})
                            || {P, GL} <- maps:get(gl_pids, Scan), GL =:= Master]}
            || {App, Master} <- Masters],
    #{modules => Modules, restart => Restart, apps => Apps,
      scan => maps:with([processes, matched, workers, elapsedUs, partial, suspendWalk], Scan)}.

classify_module(#{module := M} = Mi, #{scan := Scan} = Ctx) ->
    Hits = maps:get(M, maps:get(hits, Scan), []),
    Old = maps:get(M, maps:get(old, Scan), []),
    HasOld = erlang:check_old_code(M),
    Entries = case maps:get(stage, Ctx) of
                  install -> install_entries(Mi, Hits, Old, Ctx);
                  make_permanent -> permanent_entries(Mi, Hits, Old, Ctx)
              end,
    Mi#{has_old => HasOld, entries => Entries,
        suspended_pids => maps:get(M, maps:get(suspend, Ctx), [])}.

install_entries(#{module := M} = Mi, Hits, Old, Ctx) ->
    Suspended = maps:get(M, maps:get(suspend, Ctx), []),
    OldSet = maps:from_list([{P, true} || P <- Old]),
    HitMap = maps:from_list(Hits),
    Pids = lists:usort(Old ++ [P || {P, _} <- Hits] ++ Suspended),
    [E || P <- Pids,
          E <- [install_fate(P, maps:is_key(P, OldSet), maps:get(P, HitMap, none),
                             lists:member(P, Suspended), Mi, Ctx)],
          E =/= skip].

install_fate(P, true, Ref, _Susp, #{module := M, pre := Pre}, _Ctx) ->
    {Fate, Why} = case Pre of
                      brutal_purge ->
                          {killed, fmt("runs old code of ~ts left by an earlier upgrade "
                                       "(check_process_code); the brutal pre-purge kills it "
                                       "when install loads the new version~ts",
                                       [M, restart_note(P)])};
                      soft_purge ->
                          {blocks_install, fmt("runs old code of ~ts left by an earlier upgrade "
                                               "(check_process_code); with a soft pre-purge "
                                               "install_release returns {error,{old_processes,~ts}} "
                                               "and installs nothing", [M, M])}
                  end,
    entry(P, Fate, install, Why, Ref);
install_fate(P, false, Ref, true, #{module := M, code_change := CC}, _Ctx)
  when Ref =:= none; map_get(frames, Ref) =:= [] ->
    How = case CC of
              {Mode, Extra} ->
                  io_lib:format("calls code_change/3 (~ts, Extra = ~ts) to migrate its state",
                                [Mode, text(Extra)]);
              none ->
                  "does not call code_change/3 (a plain {update, M}): the state is kept as it is"
          end,
    Fun = fun_note(Ref, M),
    entry(P, suspended, install,
          fmt("release_handler suspends it (a supervisor child spec lists ~ts), loads the new "
              "code, ~ts, and resumes it on the new code~ts", [M, How, Fun]), Ref);
install_fate(_P, false, none, _, _Mi, _Ctx) ->
    skip;
install_fate(P, false, #{frames := [_ | _] = Frames} = Ref, _Susp, Mi, Ctx) ->
    #{module := M, post := Post, purged_at_install := PurgedAtInstall} = Mi,
    Loops = maps:get(M, maps:get(loops, Ctx), unknown),
    Stuck = case Loops of
                unknown -> unknown;
                _ -> [F || F <- lists:usort(Frames), lists:member(F, Loops)]
            end,
    Perm = maps:get(permanent_step, Ctx),
    Fun = fun_note(Ref, M),
    if
        PurgedAtInstall ->
            entry(P, killed, install,
                  fmt("runs ~ts (~ts); the relup's {purge,[~ts]} kills processes on that code "
                      "during install~ts", [M, frames_text(M, Frames), M, Fun]), Ref);
        Stuck =:= [] ->
            {Fate, When, Tail} =
                case {Post, Perm} of
                    {brutal_purge, true} ->
                        {may_migrate, make_permanent,
                         "; if it is still in them when make_permanent runs, the brutal "
                         "post-purge kills it"};
                    _ ->
                        {may_migrate, null, "; until then it keeps the old code in use"}
                end,
            entry(P, Fate, When,
                  fmt("has ~ts on its stack, not in a loop: it reaches the new code once "
                      "those calls return~ts~ts", [frames_text(M, Frames), Tail, Fun]), Ref);
        true ->
            Where = case Stuck of
                        unknown -> fmt("cannot read the object code of ~ts to look for loops, "
                                       "so ~ts on its stack is assumed to loop",
                                       [M, frames_text(M, Frames)]);
                        _ -> fmt("its stack is in ~ts, which loops through a local call: it "
                                 "never reaches the new code", [frames_text(M, Stuck)])
                    end,
            case {Post, Perm} of
                {brutal_purge, true} ->
                    entry(P, killed, make_permanent,
                          fmt("~ts, and make_permanent's brutal post-purge kills it~ts",
                              [Where, Fun]), Ref);
                {brutal_purge, false} ->
                    entry(P, stays_on_old_code, null,
                          fmt("~ts; a rollback to the permanent release runs no make_permanent, "
                              "so the old code stays in use until it exits~ts", [Where, Fun]), Ref);
                {soft_purge, _} ->
                    entry(P, stays_on_old_code, null,
                          fmt("~ts; the soft post-purge leaves it on the old code, and the next "
                              "upgrade of ~ts kills it (brutal pre-purge) or is blocked by it "
                              "(soft)~ts", [Where, M, Fun]), Ref)
            end
    end;
install_fate(P, false, #{holds_fun := true} = Ref, _Susp, #{module := M, post := Post}, Ctx) ->
    When = case {Post, maps:get(permanent_step, Ctx)} of
               {brutal_purge, true} -> make_permanent;
               _ -> null
           end,
    entry(P, badfun_on_next_call, When,
          fmt("holds a fun made by the current code of ~ts (#Fun<~ts.…>); after install the fun "
              "still runs the old code, and once that code is purged~ts calling it raises badfun. "
              "Purging ignores funs, so the process is not killed", [M, M, purge_when(When)]), Ref);
install_fate(P, false, #{mention := true} = Ref, Susp, #{module := M, suspend := SuspendOp}, _Ctx) ->
    case agent_process(P) orelse not started_from(P, M) of
        true -> skip;
        false when SuspendOp, not Susp ->
            entry(P, unaffected, null,
                  fmt("mentions ~ts (e.g. as its callback module) but no supervisor child spec lists "
                      "~ts, so it is not suspended and gets no code_change: its next call into ~ts "
                      "runs the new code with its state as it is", [M, M, M]), Ref);
        false ->
            entry(P, unaffected, null,
                  fmt("mentions ~ts only as data (e.g. its callback module): no frame or fun of ~ts "
                      "is on its stack, so its next external call runs the new code", [M, M]), Ref)
    end;
install_fate(_P, false, _Ref, _Susp, _Mi, _Ctx) ->
    skip.

purge_when(make_permanent) -> " (at make_permanent)";
purge_when(null) -> " (when release_handler purges it)".

%% After install: who is still on the old code, and what make_permanent does to them.
permanent_entries(#{module := M, post := Post}, Hits, Old, _Ctx) ->
    HitMap = maps:from_list(Hits),
    OldEntries =
        [case Post of
             brutal_purge ->
                 entry(P, killed, make_permanent,
                       fmt("still runs the old code of ~ts (check_process_code): make_permanent's "
                           "brutal post-purge kills it", [M]), maps:get(P, HitMap, none));
             soft_purge ->
                 entry(P, stays_on_old_code, null,
                       fmt("still runs the old code of ~ts (check_process_code): the soft "
                           "post-purge leaves it; release_handler purges the old code once it exits",
                           [M]), maps:get(P, HitMap, none))
         end || P <- Old],
    FunEntries =
        [entry(P, badfun_on_next_call, null,
               fmt("holds a fun of ~ts; if the fun was made before the install (by what is now the "
                   "old code), calling it after the purge raises badfun", [M]), Ref)
         || {P, #{holds_fun := true} = Ref} <- Hits, not lists:member(P, Old)],
    OldEntries ++ FunEntries.

entry(P, Fate, When, Why, Ref) ->
    {Frames, Fun} = case Ref of
                        none -> {[], false};
                        #{frames := Fs, holds_fun := HF} -> {Fs, HF}
                    end,
    #{pid => P, fate => Fate, 'when' => When, why => Why, frames => Frames, holds_fun => Fun}.

%% Seen on real releases: a supervisor restarts a child killed by the
%% pre-purge while release_handler is still loading, and the new process can
%% come up on the code that is being replaced. Say so; it cannot be predicted.
restart_note(P) ->
    Sup = case erlang:process_info(P, parent) of
              {parent, Parent} when is_pid(Parent) -> Parent;
              _ -> undefined
          end,
    case is_pid(Sup) andalso node(Sup) =:= node() andalso started_as_supervisor(Sup) of
        true ->
            <<"; its supervisor will restart it, and a restart that races the load can "
              "start on the code being replaced: check the old-code list after install">>;
        false ->
            <<>>
    end.

started_as_supervisor(Pid) ->
    try proc_lib:translate_initial_call(Pid) of
        {supervisor, _, _} -> true;
        _ -> false
    catch _:_ -> false
    end.

fun_note(#{holds_fun := true}, M) -> fmt(". It also holds a fun of ~ts", [M]);
fun_note(_, _) -> <<>>.

frames_text(M, Frames) ->
    lists:join(", ", [io_lib:format("~ts:~ts/~b", [M, F, A]) || {F, A} <- lists:usort(Frames)]).

%% A process that only mentions M is listed when M is its callback or
%% start module (a gen_server of M: `$initial_call' is {M, init, 1});
%% supervisors and application masters mention modules as plain data.
started_from(P, M) ->
    try proc_lib:translate_initial_call(P) of
        {M, _, _} -> true;
        _ -> false
    catch _:_ -> false
    end.

%% The agent's own processes hold module names in their state (requests,
%% journal); listing them as "unaffected" would be noise.
agent_process(P) ->
    P =:= self() orelse
        case process_info(P, registered_name) of
            {registered_name, Name} ->
                lists:prefix("beamdeck_agent", atom_to_list(Name));
            _ -> false
        end.

%%% JSON %%%

-define(SEVERITY, [killed, blocks_install, badfun_on_next_call, stays_on_old_code,
                   may_migrate, suspended, unaffected]).

modules_json(Modules) ->
    {Json, _Left} =
        lists:mapfoldl(
          fun(#{module := M, entries := Es} = Mi, Budget) ->
                  Sorted = lists:sort(fun(A, B) -> rank(A) =< rank(B) end, Es),
                  Shown = lists:sublist(Sorted, max(0, Budget)),
                  J = #{module => atom_to_binary(M, utf8), app => maps:get(app, Mi),
                        op => case Mi of #{suspend := true} -> update; _ -> maps:get(op, Mi) end,
                        prePurge => beamdeck_agent_release:purge_json(maps:get(pre, Mi)),
                        postPurge => beamdeck_agent_release:purge_json(maps:get(post, Mi)),
                        hasOldCode => maps:get(has_old, Mi),
                        suspend => maps:get(suspend, Mi),
                        codeChange => case maps:get(code_change, Mi) of
                                          none -> null;
                                          {Mode, Extra} -> #{mode => Mode, extra => printed(Extra)}
                                      end,
                        purgedAtInstall => maps:get(purged_at_install, Mi),
                        %% Who comes back after a kill: bounded by the listing, 1 s per module.
                        processes => [process_json(E) || E <- beamdeck_agent_restarts:annotate(Shown, ?CALL_TIMEOUT)],
                        truncated => length(Shown) < length(Es),
                        counts => fate_counts([{P, F, W} || #{pid := P, fate := F, 'when' := W} <- Es])},
                  {J, Budget - length(Shown)}
          end, ?MAX_LISTED, Modules),
    All = [{P, F, W} || #{entries := Es} <- Modules, #{pid := P, fate := F, 'when' := W} <- Es],
    {Json, overall_counts(All)}.

rank(#{fate := F}) -> index(F, ?SEVERITY, 1).

index(X, [X | _], N) -> N;
index(X, [_ | T], N) -> index(X, T, N + 1);
index(_, [], N) -> N.

fate_counts(Entries) ->
    Zero = maps:from_list([{F, 0} || F <- ?SEVERITY]),
    lists:foldl(fun({_, F, _}, Acc) -> maps:update_with(F, fun(N) -> N + 1 end, 1, Acc) end,
                Zero, Entries).

%% A process listed under several modules counts once, with its worst fate.
overall_counts(Entries) ->
    Worst = lists:foldl(fun({P, F, W}, Acc) ->
                                case maps:find(P, Acc) of
                                    {ok, {F0, _}} -> case index(F, ?SEVERITY, 1) < index(F0, ?SEVERITY, 1) of
                                                         true -> Acc#{P => {F, W}};
                                                         false -> Acc
                                                     end;
                                    error -> Acc#{P => {F, W}}
                                end
                        end, #{}, Entries),
    Base = fate_counts([{P, F, W} || {P, {F, W}} <- maps:to_list(Worst)]),
    Killed = [W || {_, {killed, W}} <- maps:to_list(Worst)],
    Base#{processes => map_size(Worst),
          killedAtInstall => length([x || install <- Killed]),
          killedAtPermanent => length([x || make_permanent <- Killed])}.

%% @doc One preview entry as wire JSON: `pid', `name', `fate', `when',
%% `why', `initialCall', `currentFunction', `stack' (the module's
%% functions on its stack, `"f/a"'), `holdsFun', `alive', and for a killed
%% process `afterKill' (beamdeck_agent_restarts).
-spec process_json(Entry) -> map() when Entry :: map().
process_json(#{pid := P, fate := Fate, 'when' := When, why := Why} = E) ->
    Info = case process_info(P, [registered_name, current_function]) of
               undefined -> undefined;
               I -> I
           end,
    Name = case Info of
               undefined -> null;
               _ -> beamdeck_agent_terms:maybe_atom(proplists:get_value(registered_name, Info))
           end,
    Json = #{pid => beamdeck_agent_terms:pid(P), name => Name, fate => Fate, 'when' => When,
      why => Why, alive => Info =/= undefined,
      initialCall => initial_call(P, Info),
      currentFunction => case Info of
                             undefined -> null;
                             _ -> beamdeck_agent_terms:maybe_mfa(proplists:get_value(current_function, Info))
                         end,
      stack => [iolist_to_binary([F, $/, integer_to_binary(A)])
                || {F, A} <- lists:usort(maps:get(frames, E, []))],
      holdsFun => maps:get(holds_fun, E, false)},
    %% `afterKill' (killed entries only): restarted by its supervisor or gone.
    maps:merge(Json, beamdeck_agent_restarts:json(E)).

initial_call(_P, undefined) -> null;
initial_call(P, _) ->
    try proc_lib:translate_initial_call(P) of
        MFA -> beamdeck_agent_terms:maybe_mfa(MFA)
    catch _:_ -> null
    end.

%%% SCAN %%%

%% @doc One pass over every process for the modules `Mods'. Options: `old'
%% (modules with old code: check_process_code for each), `group_leaders'
%% (collect the processes led by these), `exclude' (pids to skip),
%% `workers'. Returns `hits' (module → [{pid, ref()}]), `old' (module →
%% pids on its old code), `gl_pids' and statistics.
-spec scan(Mods, Opts) -> map() when Mods :: [module()], Opts :: map().
scan(Mods, Opts) ->
    T0 = erlang:monotonic_time(microsecond),
    Procs = erlang:processes(),
    Workers = maps:get(workers, Opts, default_workers(length(Procs))),
    Texts = maps:from_list([{atom_to_binary(M, utf8), M} || M <- Mods]),
    Job = #{pattern => case Mods of
                           [] -> none;
                           _ -> binary:compile_pattern(maps:keys(Texts))
                       end,
            texts => Texts, old => maps:get(old, Opts, []),
            gls => maps:get(group_leaders, Opts, []),
            exclude => [self() | maps:get(exclude, Opts, [])]},
    {Results, Partial} = run_workers(chunks(Procs, Workers), Job),
    Hits = lists:foldl(fun({P, Refs}, Acc) ->
                               maps:fold(fun(M, Ref, A2) ->
                                                 maps:update_with(M, fun(L) -> [{P, Ref} | L] end,
                                                                  [{P, Ref}], A2)
                                         end, Acc, Refs)
                       end, #{}, lists:append([H || #{hits := H} <- Results])),
    Old = lists:foldl(fun({M, P}, Acc) ->
                              maps:update_with(M, fun(L) -> [P | L] end, [P], Acc)
                      end, #{}, lists:append([O || #{old := O} <- Results])),
    #{hits => Hits, old => maps:map(fun(_, L) -> lists:sort(L) end, Old),
      gl_pids => lists:append([G || #{gl := G} <- Results]),
      processes => length(Procs),
      matched => lists:sum([N || #{matched := N} <- Results]),
      workers => Workers, partial => Partial,
      elapsedUs => erlang:monotonic_time(microsecond) - T0}.

default_workers(N) when N < 5000 -> 1;
default_workers(_) -> max(1, min(8, erlang:system_info(schedulers_online))).

chunks(L, 1) -> [L];
chunks(L, W) ->
    Size = (length(L) + W - 1) div W,
    chunk(L, Size).

chunk([], _) -> [];
chunk(L, Size) when length(L) =< Size -> [L];
chunk(L, Size) ->
    {A, B} = lists:split(Size, L),
    [A | chunk(B, Size)].

%% Linked workers die with the caller; a worker that fails is reported as
%% a partial scan rather than failing the whole preview.
run_workers(Chunks, Job) ->
    Parent = self(),
    Tag = make_ref(),
    Pids = [spawn_link(fun() ->
                               receive
                                   {Tag, go, Exclude} ->
                                       R = try scan_chunk(C, Job#{exclude => Exclude})
                                           catch _:_ -> failed
                                           end,
                                       Parent ! {Tag, self(), R}
                               end
                       end) || C <- Chunks],
    %% Every worker's own stack holds the module names: skip them all.
    Exclude = Pids ++ maps:get(exclude, Job),
    _ = [P ! {Tag, go, Exclude} || P <- Pids],
    collect(Tag, Pids, [], false, erlang:monotonic_time(millisecond) + ?SCAN_TIMEOUT).

collect(_Tag, [], Acc, Partial, _Deadline) -> {Acc, Partial};
collect(Tag, Pids, Acc, Partial, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Tag, Pid, failed} -> collect(Tag, lists:delete(Pid, Pids), Acc, true, Deadline);
        {Tag, Pid, R} -> collect(Tag, lists:delete(Pid, Pids), [R | Acc], Partial, Deadline)
    after Left ->
        [begin unlink(P), exit(P, kill) end || P <- Pids],
        {Acc, true}
    end.

scan_chunk(Pids, #{pattern := Pattern, texts := Texts, old := OldMods, gls := GLs,
                   exclude := Exclude}) ->
    Re = frame_re(),
    Skip = maps:from_list([{P, true} || P <- [self() | Exclude]]),
    {Hits, Old, Gl, N} =
        lists:foldl(
          fun(P, {H, O, G, Matched} = Acc) ->
                  case maps:is_key(P, Skip) of
                      true -> Acc;
                      false ->
                          {H1, M1} = case backtrace_hit(P, Pattern, Re, Texts) of
                                         none -> {H, Matched};
                                         Refs -> {[{P, Refs} | H], Matched + 1}
                                     end,
                          O1 = [{M, P} || M <- OldMods, old_code(P, M)] ++ O,
                          G1 = case GLs of
                                   [] -> G;
                                   _ -> case process_info(P, group_leader) of
                                            {group_leader, GL} -> [{P, GL} || lists:member(GL, GLs)] ++ G;
                                            _ -> G
                                        end
                               end,
                          {H1, O1, G1, M1}
                  end
          end, {[], [], [], 0}, Pids),
    #{hits => Hits, old => Old, gl => Gl, matched => N}.

old_code(P, M) ->
    try erlang:check_process_code(P, M)
    catch error:_ -> false
    end.

backtrace_hit(_P, none, _Re, _Texts) -> none;
backtrace_hit(P, Pattern, Re, Texts) ->
    case process_info(P, backtrace) of
        {backtrace, Bt} ->
            case binary:match(Bt, Pattern) of
                nomatch -> none;
                _ -> case parse(Bt, Pattern, Re, Texts) of
                         Refs when map_size(Refs) =:= 0 -> none;
                         Refs -> Refs
                     end
            end;
        undefined -> none
    end.

frame_re() ->
    {ok, Re} = re:compile(?FRAME_RE),
    Re.

%% @doc Parse a backtrace (the text of `process_info(P, backtrace)') for
%% references to `Mods': per module, the functions on the stack (program
%% counter and return addresses), whether a fun of the module is held, and
%% whether the module is mentioned at all.
-spec parse_backtrace(Backtrace, Mods) -> #{module() => ref()}
    when Backtrace :: binary(), Mods :: [module()].
parse_backtrace(Bt, Mods) ->
    Texts = maps:from_list([{atom_to_binary(M, utf8), M} || M <- Mods]),
    parse(Bt, binary:compile_pattern(maps:keys(Texts)), frame_re(), Texts).

parse(Bt, Pattern, Re, Texts) ->
    Found = lists:usort([binary:part(Bt, Pos, Len) || {Pos, Len} <- binary:matches(Bt, Pattern)]),
    Frames = case re:run(Bt, Re, [global, {capture, all_but_first, binary}]) of
                 {match, Ms} ->
                     [{mod_text(Q, U), {unquote(F), binary_to_integer(A)}} || [Q, U, F, A] <- Ms];
                 nomatch -> []
             end,
    lists:foldl(fun(Text, Acc) ->
                        Fs = [FA || {T, FA} <- Frames, T =:= Text],
                        Fun = binary:match(Bt, [<<"#Fun<", Text/binary, ".">>,
                                                <<"#Fun<'", Text/binary, "'.">>]) =/= nomatch,
                        Mention = mentioned(Bt, Text),
                        case Fs =/= [] orelse Fun orelse Mention of
                            true -> Acc#{maps:get(Text, Texts) =>
                                             #{frames => Fs, holds_fun => Fun, mention => Mention}};
                            false -> Acc
                        end
                end, #{}, Found).

mod_text(<<>>, Plain) -> Plain;
mod_text(Quoted, _) -> unescape(Quoted).

unquote(<<$', Rest/binary>>) ->
    unescape(binary:part(Rest, 0, byte_size(Rest) - 1));
unquote(Name) -> Name.

unescape(B) ->
    binary:replace(binary:replace(B, <<"\\'">>, <<"'">>, [global]), <<"\\\\">>, <<"\\">>, [global]).

%% The module's name as a whole atom somewhere (not part of a longer name).
mentioned(Bt, Text) ->
    lists:any(fun({Pos, Len}) ->
                      Before = case Pos of 0 -> $\s; _ -> binary:at(Bt, Pos - 1) end,
                      After = case Pos + Len < byte_size(Bt) of
                                  true -> binary:at(Bt, Pos + Len);
                                  false -> $\s
                              end,
                      (Before =:= $' orelse not atom_char(Before) andalso Before =/= $.)
                          andalso (After =:= $' orelse not atom_char(After) andalso After =/= $.)
              end, binary:matches(Bt, Text)).

atom_char(C) -> (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
                    orelse (C >= $0 andalso C =< $9) orelse C =:= $_ orelse C =:= $@.

%%% SUPERVISED PROCESSES (who release_handler would suspend) %%%

%% @doc For each module in `Mods', the processes release_handler would
%% suspend for `{update, M}': children in the applications' supervision
%% trees whose child spec lists M (`dynamic' modules asked with
%% `get_modules'), and top supervisors whose callback module is M. Every
%% call is bounded; the walk stops at `BudgetMs'.
-spec supervised(Mods, BudgetMs) -> #{module() => [pid()]}
    when Mods :: [module()], BudgetMs :: pos_integer().
supervised(Mods, BudgetMs) ->
    Deadline = erlang:monotonic_time(millisecond) + BudgetMs,
    Apps = try application:which_applications(?CALL_TIMEOUT) catch _:_ -> [] end,
    Found = lists:foldl(
              fun({App, _, _}, Acc) ->
                      case before(Deadline) andalso beamdeck_agent_otp:app_supervisor(App, ?CALL_TIMEOUT) of
                          {ok, Root} ->
                              RootMod = case beamdeck_agent_otp:call(
                                               fun() -> supervisor:get_callback_module(Root) end,
                                               ?CALL_TIMEOUT) of
                                            {ok, RM} when is_atom(RM) -> [RM];
                                            _ -> []
                                        end,
                              walk(Root, Mods, 0, Deadline, add(Root, RootMod, Mods, Acc));
                          _ -> Acc
                      end
              end, #{}, Apps),
    maps:map(fun(_, Ps) -> lists:usort(Ps) end, Found).

walk(_Sup, _Mods, Depth, _Deadline, Acc) when Depth > 30 -> Acc;
walk(Sup, Mods, Depth, Deadline, Acc) ->
    case before(Deadline) andalso beamdeck_agent_otp:which_children(Sup, ?CALL_TIMEOUT) of
        {ok, Children} when is_list(Children) ->
            lists:foldl(
              fun({_Id, Pid, Type, Mods0}, A) when is_pid(Pid) ->
                      ChildMods = case Mods0 of
                                      dynamic when Type =:= worker -> dynamic_mods(Pid);
                                      L when is_list(L) -> L;
                                      _ -> []
                                  end,
                      A1 = add(Pid, ChildMods, Mods, A),
                      case Type of
                          supervisor -> walk(Pid, Mods, Depth + 1, Deadline, A1);
                          _ -> A1
                      end;
                 (_, A) -> A
              end, Acc, lists:sublist(Children, ?MAX_SUP_CHILDREN));
        _ -> Acc
    end.

add(Pid, ChildMods, Mods, Acc) ->
    lists:foldl(fun(M, A) ->
                        case lists:member(M, ChildMods) of
                            true -> maps:update_with(M, fun(L) -> [Pid | L] end, [Pid], A);
                            false -> A
                        end
                end, Acc, Mods).

dynamic_mods(Pid) ->
    case beamdeck_agent_otp:call(fun() -> gen:call(Pid, self(), get_modules, ?CALL_TIMEOUT) end,
                                 ?CALL_TIMEOUT + 100) of
        {ok, {ok, Mods}} when is_list(Mods) -> Mods;
        _ -> []
    end.

before(Deadline) -> erlang:monotonic_time(millisecond) < Deadline.

%%% OLD CODE (the old_code request) %%%

%% @doc Processes still on old code, per module: every loaded module that
%% has old code, plus `Watch' (e.g. the modules of the last install, listed
%% even with none). Cheap enough to poll every second: one
%% check_process_code per process and module with old code.
-spec old_code(Watch) -> map() when Watch :: [module()].
old_code(Watch) ->
    T0 = erlang:monotonic_time(microsecond),
    WithOld = [M || {M, _} <- code:all_loaded(), erlang:check_old_code(M)],
    Mods = lists:usort(WithOld ++ [M || M <- Watch, is_atom(M)]),
    OldMods = [M || M <- Mods, erlang:check_old_code(M)],
    Scan = case OldMods of
               [] -> #{old => #{}, processes => length(erlang:processes())};
               _ -> scan([], #{old => OldMods})
           end,
    Old = maps:get(old, Scan),
    {Json, _} = lists:mapfoldl(
                  fun(M, Budget) ->
                          Ps = maps:get(M, Old, []),
                          Shown = lists:sublist(Ps, max(0, Budget)),
                          {#{module => atom_to_binary(M, utf8), hasOldCode => lists:member(M, OldMods),
                             count => length(Ps), truncated => length(Shown) < length(Ps),
                             processes => [old_json(P) || P <- Shown]},
                           Budget - length(Shown)}
                  end, ?MAX_LISTED * 2, Mods),
    #{at => beamdeck_agent_terms:now_ms(), modules => Json,
      total => lists:sum([length(L) || L <- maps:values(Old)]),
      processes => maps:get(processes, Scan),
      elapsedUs => erlang:monotonic_time(microsecond) - T0}.

old_json(P) ->
    Info = process_info(P, [registered_name, current_function]),
    #{pid => beamdeck_agent_terms:pid(P),
      name => case Info of
                  undefined -> null;
                  _ -> beamdeck_agent_terms:maybe_atom(proplists:get_value(registered_name, Info))
              end,
      initialCall => initial_call(P, Info),
      currentFunction => case Info of
                             undefined -> null;
                             _ -> beamdeck_agent_terms:maybe_mfa(proplists:get_value(current_function, Info))
                         end}.

%%% HELPERS %%%

bin(S) -> unicode:characters_to_binary(S).

text(T) -> maps:get(text, beamdeck_agent_terms:printed(T, 500)).

printed(T) -> beamdeck_agent_terms:printed(T, 500).

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
