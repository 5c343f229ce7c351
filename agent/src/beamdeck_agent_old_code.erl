%%% @doc The `old_code' request: processes still on old code, per module,
%%% answered incrementally.
%%%
%%% Once a module's new version is loaded, a process can start running its
%%% old code only through an old fun (spawned or called). So after one full
%%% `check_process_code' pass (beamdeck_agent_scan) over every process for
%%% a given set of modules with old code, a poll re-checks only the pids
%%% found on old code (they can only leave it: move on or die) and the
%%% processes that appeared since (a set difference against the pids the
%%% last full pass saw, kept in this module's ETS table). A full pass runs
%%% again when the modules with old code or their current versions change
%%% (a purge, a load), when `old_code_rescan_ms' has passed (an existing
%%% process that called an old fun), when many processes are new, and
%%% whenever there is no table (every call is then a full pass).
-module(beamdeck_agent_old_code).

-export([old_code/1, new_table/0]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([rescan/0]).
-endif.

-define(TABLE, ?MODULE).
-define(STATE, '$state').
-define(MAX_LISTED, 400).
%% The memo's floor: none beyond its cost. Upgrade steps are verified by
%% asking right after them; only a poll sooner than the pass's cost allows
%% gets the last result.
-define(OLD_CODE_MIN_MS, 1).
%% More new processes than this share of all: a full pass costs about the same.
-define(NEW_SHARE, 4).
%% Dead pids stay in the table until the next full pass: past this many
%% times the live count (plus slack), a full pass resets it.
-define(KNOWN_SLACK, 10000).

%% Which modules have old code, and which current version each runs: a
%% change makes the last full pass's answer wrong.
-type stamp() :: {[module()], [{module(), term()}]}.
-type old() :: #{module() => [pid()]}.

%% @doc Create the table of the pids the last full pass saw (call from a
%% process that lives as long as the agent); `ok' if it exists already.
-spec new_table() -> ok.
new_table() ->
    case ets:info(?TABLE, name) of
        undefined ->
            _ = ets:new(?TABLE, [named_table, public, set]),
            ok;
        _ ->
            ok
    end.

%% @doc Processes still on old code, per module: every loaded module that
%% has old code, plus `Watch' (e.g. the modules of the last install, listed
%% even with none). One check per loaded module, then check_process_code
%% for the processes that may be on old code (above). The whole pass is
%% under the agent's cost budget (beamdeck_agent_budget:memo/5): polled
%% sooner than its cost allows, the last result is the answer (its `at'
%% says when), unless the modules with old code or their versions changed.
-spec old_code(Watch) -> map() when Watch :: [module()].
old_code(Watch) ->
    WithOld = [M || {M, _} <- code:all_loaded(), erlang:check_old_code(M)],
    Mods = lists:usort(WithOld ++ [M || M <- Watch, is_atom(M)]),
    OldMods = [M || M <- Mods, erlang:check_old_code(M)],
    Stamp = {OldMods, [{M, version(M)} || M <- OldMods]},
    beamdeck_agent_budget:memo(old_code, {Mods, Stamp}, erlang:system_info(process_count),
                               ?OLD_CODE_MIN_MS, fun() -> reply(Mods, OldMods, Stamp) end).

%% The loaded version's md5: a new version of a module that still has old
%% code means a purge and a load happened between two polls.
version(M) ->
    try M:module_info(md5)
    catch _:_ -> undefined
    end.

reply(Mods, OldMods, Stamp) ->
    T0 = erlang:monotonic_time(microsecond),
    {Old, Procs, Mode} = find(OldMods, Stamp),
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
      processes => Procs, scan => Mode,
      elapsedUs => erlang:monotonic_time(microsecond) - T0}.

%% Per module with old code, the pids on it; the process count; which pass ran.
-spec find([module()], stamp()) -> {old(), non_neg_integer(), none | full | incremental}.
find([], _Stamp) ->
    %% Nothing on old code: the count alone, without a list of every pid.
    forget(),
    {#{}, erlang:system_info(process_count), none};
find(OldMods, Stamp) ->
    Now = erlang:monotonic_time(millisecond),
    Every = beamdeck_agent_config:get(old_code_rescan_ms),
    Procs = erlang:processes(),
    N = length(Procs),
    case recall() of
        {Stamp, FullAt, Old, Known} when Now - FullAt < Every,
                                        Known =< 2 * N + ?KNOWN_SLACK ->
            New = [P || P <- Procs, not ets:member(?TABLE, P)],
            case length(New) * ?NEW_SHARE > N of
                true -> full(OldMods, Stamp, Procs, Now);
                false -> incremental(OldMods, Stamp, FullAt, Old, New, N)
            end;
        _ ->
            full(OldMods, Stamp, Procs, Now)
    end.

full(OldMods, Stamp, Procs, Now) ->
    Scan = beamdeck_agent_scan:scan([], #{old => OldMods, pids => Procs}),
    Old = maps:get(old, Scan),
    case maps:get(partial, Scan) of
        %% An incomplete pass is no base for the next ones.
        true -> forget();
        false -> remember_full(Stamp, Now, Old, Procs)
    end,
    {Old, length(Procs), full}.

%% The pids on old code can only leave it; new ones may be on it.
incremental(OldMods, Stamp, FullAt, Old0, New, N) ->
    Check = lists:usort(lists:append(maps:values(Old0))) ++ New,
    Scan = beamdeck_agent_scan:scan([], #{old => OldMods, pids => Check}),
    Old = maps:get(old, Scan),
    case maps:get(partial, Scan) of
        true -> forget();
        false -> remember(Stamp, FullAt, Old, New)
    end,
    {Old, N, incremental}.

recall() ->
    try ets:lookup(?TABLE, ?STATE) of
        [{_, Stamp, FullAt, Old}] -> {Stamp, FullAt, Old, ets:info(?TABLE, size)};
        [] -> none
    catch error:badarg -> none
    end.

remember_full(Stamp, Now, Old, Procs) ->
    try
        true = ets:delete_all_objects(?TABLE),
        true = ets:insert(?TABLE, [{P} || P <- Procs]),
        true = ets:insert(?TABLE, {?STATE, Stamp, Now, Old}),
        ok
    catch error:badarg -> ok
    end.

remember(Stamp, FullAt, Old, New) ->
    try
        true = ets:insert(?TABLE, [{P} || P <- New]),
        true = ets:insert(?TABLE, {?STATE, Stamp, FullAt, Old}),
        ok
    catch error:badarg -> ok
    end.

-ifdef(TEST).
%% @doc Make the next old_code/1 call a full pass.
-spec rescan() -> ok.
rescan() -> forget().
-endif.

forget() ->
    try ets:delete(?TABLE, ?STATE), ok
    catch error:badarg -> ok
    end.

old_json(P) ->
    Info = process_info(P, [registered_name, current_function]),
    #{pid => beamdeck_agent_terms:pid(P),
      name => case Info of
                  undefined -> null;
                  _ -> beamdeck_agent_terms:maybe_atom(proplists:get_value(registered_name, Info))
              end,
      initialCall => case Info of undefined -> null; _ -> beamdeck_agent_terms:initial_call(P) end,
      currentFunction => case Info of
                             undefined -> null;
                             _ -> beamdeck_agent_terms:maybe_mfa(proplists:get_value(current_function, Info))
                         end}.
