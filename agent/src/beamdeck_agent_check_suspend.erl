%%% @doc Suspend reachability (issue 13): `{update, M}' suspends and
%%% code_changes only the processes release_handler finds by walking the
%%% applications' supervisors (child specs listing M).
%%%
%%% - `not_suspended' (error): a process whose initial call or current
%%%   function is in an updated module (a gen_* process's callback module is
%%%   its proc_lib initial call) that the supervisor walk does not find: it
%%%   is neither suspended nor code_changed, keeps its old state and crashes
%%%   on its next call to the new code.
%%% - `sys_unresponsive' (warning): a process the walk finds that does not
%%%   answer a system message (`sys:get_status/2') within ?STATUS_TIMEOUT ms:
%%%   release_handler's suspend would stall on it.
%%% Bounded: ?MAX_SCAN processes scanned, ?MAX_PINGS asked, all in parallel.
-module(beamdeck_agent_check_suspend).

-export([check/1, unreachable/3, unresponsive/2]).

-define(WALK_BUDGET_MS, 3000).
-define(STATUS_TIMEOUT, 1000).
-define(MAX_SCAN, 1000000).
-define(MAX_PINGS, 2000).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{mods := Mods}) ->
    Updated = [M || #{module := M, suspend := true} <- Mods],
    case Updated of
        [] -> [];
        _ ->
            Supervised = beamdeck_agent_tree:supervised(Updated, ?WALK_BUDGET_MS),
            Reached = lists:usort(lists:append(maps:values(Supervised))),
            Lone = unreachable(Updated, Reached, lists:sublist(erlang:processes(), ?MAX_SCAN)),
            Silent = unresponsive(lists:sublist(Reached, ?MAX_PINGS), ?STATUS_TIMEOUT),
            [not_suspended(M, Pids) || {M, Pids} <- Lone]
                ++ [sys_unresponsive(M, Pids)
                    || M <- Updated, Pids <- [[P || P <- maps:get(M, Supervised, []),
                                                   lists:member(P, Silent)]],
                       Pids =/= []]
    end.

%% @doc Per updated module, the processes among `Procs' that run it (initial
%% call or current function) but are not in `Reached'.
-spec unreachable(Updated, Reached, Procs) -> [{module(), [pid()]}]
    when Updated :: [module()], Reached :: [pid()], Procs :: [pid()].
unreachable(Updated, Reached, Procs) ->
    Set = sets:from_list(Updated),
    Own = self(),
    Hits = [{M, P} || P <- Procs, P =/= Own, not lists:member(P, Reached),
                      M <- lists:usort(modules_of(P)), sets:is_element(M, Set)],
    [{M, [P || {M2, P} <- Hits, M2 =:= M]} || M <- Updated, lists:keymember(M, 1, Hits)].

modules_of(P) ->
    case process_info(P, [initial_call, current_function, dictionary]) of
        undefined -> [];
        [{initial_call, {IM, _, _}}, {current_function, Cur}, {dictionary, Dict}] ->
            CurMod = case Cur of {CM, _, _} -> [CM]; _ -> [] end,
            PlInit = case lists:keyfind('$initial_call', 1, Dict) of
                         {_, {PM, _, _}} -> [PM];
                         _ -> []
                     end,
            [IM | CurMod ++ PlInit]
    end.

%% @doc The processes among `Pids' that do not answer `sys:get_status'
%% within `TimeoutMs' (asked all at once).
-spec unresponsive(Pids, TimeoutMs) -> [pid()] when Pids :: [pid()], TimeoutMs :: pos_integer().
unresponsive(Pids, TimeoutMs) ->
    Parent = self(),
    Tag = make_ref(),
    Askers = [{P, spawn(fun() ->
                                 Ok = try _ = sys:get_status(P, TimeoutMs), true
                                      catch exit:{timeout, _} -> false;
                                            _:_ -> true   % dead or not a sys process: nothing to stall
                                      end,
                                 Parent ! {Tag, P, Ok}
                         end)} || P <- Pids],
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs + 500,
    Answers = collect(Tag, length(Askers), Deadline, #{}),
    [exit(A, kill) || {P, A} <- Askers, not maps:is_key(P, Answers)],
    [P || P <- Pids, maps:get(P, Answers, false) =:= false].

collect(_Tag, 0, _Deadline, Acc) -> Acc;
collect(Tag, N, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive {Tag, P, Ok} -> collect(Tag, N - 1, Deadline, Acc#{P => Ok})
    after Left -> Acc
    end.

not_suspended(M, Pids) ->
    beamdeck_agent_findings:new(
      not_suspended, M, Pids,
      beamdeck_agent_terms:fmt("~b process(es) run ~ts but release_handler's supervisor walk will not find them: "
          "{update, ~ts} neither suspends nor code_changes them, so they keep their old state "
          "and may crash on their next call into the new code", [length(Pids), M, M]),
      beamdeck_agent_terms:fmt("start the process(es) under a supervisor whose child spec lists ~ts, or restart "
          "them after the upgrade (an {apply, {M, F, A}} in the appup), or accept it", [M])).

sys_unresponsive(M, Pids) ->
    beamdeck_agent_findings:new(
      sys_unresponsive, M, Pids,
      beamdeck_agent_terms:fmt("~b process(es) that {update, ~ts} suspends did not answer a system message within "
          "~b ms: release_handler's suspend would stall on them (its default suspend timeout "
          "is 5 s, then the install fails)", [length(Pids), M, ?STATUS_TIMEOUT]),
      <<"find why the process does not handle system messages (a blocking receive or a "
        "long call), or give the update instruction a longer timeout">>).


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

unreachable_finds_a_lone_gen_server_test() ->
    {ok, Lone} = gen_server:start(beamdeck_agent_check_suspend_probe, [], []),
    {ok, Other} = gen_server:start(beamdeck_agent_check_suspend_probe, [], []),
    try
        ?assertEqual([{beamdeck_agent_check_suspend_probe, [Lone]}],
                     unreachable([beamdeck_agent_check_suspend_probe, absent_mod], [Other],
                                 [Lone, Other, self()]))
    after gen_server:stop(Lone), gen_server:stop(Other)
    end.

unresponsive_test() ->
    {ok, Ok} = gen_server:start(beamdeck_agent_check_suspend_probe, [], []),
    Stuck = spawn(fun() -> receive never -> ok end end),
    try ?assertEqual([Stuck], unresponsive([Ok, Stuck], 200))
    after gen_server:stop(Ok), exit(Stuck, kill)
    end.

findings_test() ->
    ?assertMatch(#{id := <<"not_suspended:m">>, severity := error, count := 1},
                 not_suspended(m, [self()])),
    ?assertMatch(#{severity := warning}, sys_unresponsive(m, [self()])).
-endif.
