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
%%%
%%% The plan around it is beamdeck_agent_plan; the process scan
%%% beamdeck_agent_scan; the supervisor walk beamdeck_agent_tree:supervised/2.
-module(beamdeck_agent_preview).

-export([preview/2, loops/1, modules_json/1, process_json/1]).

-define(MAX_LISTED, 400).
-define(SUP_BUDGET_MS, 3000).
-define(CALL_TIMEOUT, 1000). % per supervisor asked who restarts a killed process

-type fate() :: killed | blocks_install | stays_on_old_code | suspended | may_migrate
              | badfun_on_next_call | unaffected.
-type entry() :: #{pid := pid(), fate := fate(), 'when' := install | make_permanent | null,
                   why := binary(), frames := [{binary(), arity()}], holds_fun := boolean()}.
-export_type([fate/0, entry/0]).

%%% PREVIEW %%%

%% @doc Fates for every module `Script' loads or removes. Options:
%% `stage' (`install' | `make_permanent'), `loops' (module → what
%% beamdeck_agent_lint:stuck/2 takes about its loaded code: the lint's
%% stuck_info, or a list of `{FunctionText, Arity}' in loops; or
%% `{unknown, Why}'), `permanent_step' (false for a rollback to the permanent
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
    Scan = beamdeck_agent_scan:scan(Names, #{old => OldMods, group_leaders => [P || {_, P} <- Masters],
                         exclude => maps:get(exclude, Opts, [])}),
    Suspend = case [M || #{suspend := true, module := M} <- Mods] of
                  [] -> #{};
                  SMods when Stage =:= install -> beamdeck_agent_tree:supervised(SMods, ?SUP_BUDGET_MS);
                  _ -> #{}
              end,
    Ctx = #{stage => Stage, loops => maps:get(loops, Opts, #{}), scan => Scan,
            suspend => Suspend, restart => Restart,
            permanent_step => maps:get(permanent_step, Opts, true)},
    Modules = [classify_module(Mi, Ctx) || Mi <- Mods],
    Apps = [#{app => App, action => stop,
              processes => [process_json(#{pid => P, fate => stopped, 'when' => install,
                                           why => beamdeck_agent_terms:fmt("application ~ts is stopped during install", [App]),
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
                          {killed, beamdeck_agent_terms:fmt("runs old code of ~ts left by an earlier upgrade "
                                       "(check_process_code); the brutal pre-purge kills it "
                                       "when install loads the new version~ts",
                                       [M, restart_note(P)])};
                      soft_purge ->
                          {blocks_install, beamdeck_agent_terms:fmt("runs old code of ~ts left by an earlier upgrade "
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
          beamdeck_agent_terms:fmt("release_handler suspends it (a supervisor child spec lists ~ts), loads the new "
              "code, ~ts, and resumes it on the new code~ts", [M, How, Fun]), Ref);
install_fate(_P, false, none, _, _Mi, _Ctx) ->
    skip;
install_fate(P, false, #{frames := [_ | _] = Frames} = Ref, _Susp, Mi, Ctx) ->
    #{module := M, post := Post, purged_at_install := PurgedAtInstall} = Mi,
    Loops = maps:get(M, maps:get(loops, Ctx), {unknown, beamdeck_agent_terms:fmt("~ts was not linted", [M])}),
    Stuck = case Loops of
                {unknown, _} -> Loops;
                _ -> beamdeck_agent_lint:stuck(Frames, Loops)
            end,
    Perm = maps:get(permanent_step, Ctx),
    Fun = fun_note(Ref, M),
    if
        PurgedAtInstall ->
            entry(P, killed, install,
                  beamdeck_agent_terms:fmt("runs ~ts (~ts); the relup's {purge,[~ts]} kills processes on that code "
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
                  beamdeck_agent_terms:fmt("has ~ts on its stack, not in a loop: it reaches the new code once "
                      "those calls return~ts~ts", [frames_text(M, Frames), Tail, Fun]), Ref);
        true ->
            Where = case Stuck of
                        {unknown, Why} -> beamdeck_agent_terms:fmt("~ts, so ~ts on its stack is assumed to loop "
                                              "(the safe side)", [Why, frames_text(M, Frames)]);
                        _ -> beamdeck_agent_terms:fmt("its stack is in ~ts, which loops through a local call (or "
                                 "waits in a non-tail call for a loop that does not return): "
                                 "it never leaves the old code", [frames_text(M, Stuck)])
                    end,
            case {Post, Perm} of
                {brutal_purge, true} ->
                    entry(P, killed, make_permanent,
                          beamdeck_agent_terms:fmt("~ts, and make_permanent's brutal post-purge kills it~ts",
                              [Where, Fun]), Ref);
                {brutal_purge, false} ->
                    entry(P, stays_on_old_code, null,
                          beamdeck_agent_terms:fmt("~ts; a rollback to the permanent release runs no make_permanent, "
                              "so the old code stays in use until it exits~ts", [Where, Fun]), Ref);
                {soft_purge, _} ->
                    entry(P, stays_on_old_code, null,
                          beamdeck_agent_terms:fmt("~ts; the soft post-purge leaves it on the old code, and the next "
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
          beamdeck_agent_terms:fmt("holds a fun made by the current code of ~ts (#Fun<~ts.…>); after install the fun "
              "still runs the old code, and once that code is purged~ts calling it raises badfun. "
              "Purging ignores funs, so the process is not killed", [M, M, purge_when(When)]), Ref);
install_fate(P, false, #{mention := true} = Ref, Susp, #{module := M, suspend := SuspendOp}, _Ctx) ->
    case agent_process(P) orelse not started_from(P, M) of
        true -> skip;
        false when SuspendOp, not Susp ->
            entry(P, unaffected, null,
                  beamdeck_agent_terms:fmt("mentions ~ts (e.g. as its callback module) but no supervisor child spec lists "
                      "~ts, so it is not suspended and gets no code_change: its next call into ~ts "
                      "runs the new code with its state as it is", [M, M, M]), Ref);
        false ->
            entry(P, unaffected, null,
                  beamdeck_agent_terms:fmt("mentions ~ts only as data (e.g. its callback module): no frame or fun of ~ts "
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
                       beamdeck_agent_terms:fmt("still runs the old code of ~ts (check_process_code): make_permanent's "
                           "brutal post-purge kills it", [M]), maps:get(P, HitMap, none));
             soft_purge ->
                 entry(P, stays_on_old_code, null,
                       beamdeck_agent_terms:fmt("still runs the old code of ~ts (check_process_code): the soft "
                           "post-purge leaves it; release_handler purges the old code once it exits",
                           [M]), maps:get(P, HitMap, none))
         end || P <- Old],
    FunEntries =
        [entry(P, badfun_on_next_call, null,
               beamdeck_agent_terms:fmt("holds a fun of ~ts; if the fun was made before the install (by what is now the "
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

started_as_supervisor(Pid) -> started_from(Pid, supervisor).

fun_note(#{holds_fun := true}, M) -> beamdeck_agent_terms:fmt(". It also holds a fun of ~ts", [M]);
fun_note(_, _) -> <<>>.

frames_text(M, Frames) ->
    lists:join(", ", [io_lib:format("~ts:~ts/~b", [M, F, A]) || {F, A} <- lists:usort(Frames)]).

%% Whether M is P's callback or start module, as proc_lib reports it (a
%% gen_server of M: `$initial_call' is {M, init, 1}). A process that only
%% mentions M is listed when so; supervisors and application masters
%% mention modules as plain data.
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

%% @doc The `loops' option of preview/2 from lint results (module →
%% beamdeck_agent_lint:analyze_loaded/1's answer): what
%% beamdeck_agent_lint:stuck/2 needs about each module's loaded code, or
%% `{unknown, Why}' when its code could not be analysed (then every frame
%% of it is assumed to loop, the safe side).
-spec loops(Lints) -> #{module() => term()}
    when Lints :: #{module() => {ok, term()} | {error, term()}}.
loops(Lints) ->
    maps:map(fun(_M, {ok, A}) -> beamdeck_agent_lint:stuck_info(A);
                (_M, {error, Why}) -> {unknown, Why}
             end, Lints).

%%% JSON %%%

-define(SEVERITY, [killed, blocks_install, badfun_on_next_call, stays_on_old_code,
                   may_migrate, suspended, unaffected]).

%% @doc The preview's modules as wire JSON, at most ?MAX_LISTED processes
%% listed over all modules (each module's worst fates first), and the
%% counts over all of them (a process under several modules counts once).
-spec modules_json(Modules) -> {[map()], map()} when Modules :: [map()].
modules_json(Modules) ->
    {Json, _Left} =
        lists:mapfoldl(
          fun(#{module := M, entries := Es} = Mi, Budget) ->
                  Sorted = lists:sort(fun(A, B) -> rank(A) =< rank(B) end, Es),
                  Shown = lists:sublist(Sorted, max(0, Budget)),
                  J = #{module => atom_to_binary(M, utf8), app => maps:get(app, Mi),
                        op => case Mi of #{suspend := true} -> update; _ -> maps:get(op, Mi) end,
                        prePurge => beamdeck_agent_relup_read:purge_json(maps:get(pre, Mi)),
                        postPurge => beamdeck_agent_relup_read:purge_json(maps:get(post, Mi)),
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
      initialCall => case Info of undefined -> null; _ -> beamdeck_agent_terms:initial_call(P) end,
      currentFunction => case Info of
                             undefined -> null;
                             _ -> beamdeck_agent_terms:maybe_mfa(proplists:get_value(current_function, Info))
                         end,
      stack => [iolist_to_binary([F, $/, integer_to_binary(A)])
                || {F, A} <- lists:usort(maps:get(frames, E, []))],
      holdsFun => maps:get(holds_fun, E, false)},
    %% `afterKill' (killed entries only): restarted by its supervisor or gone.
    maps:merge(Json, beamdeck_agent_restarts:json(E)).

%%% HELPERS %%%

text(T) -> beamdeck_agent_terms:text(T, 500).

printed(T) -> beamdeck_agent_terms:printed(T, 500).

