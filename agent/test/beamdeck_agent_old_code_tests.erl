-module(beamdeck_agent_old_code_tests).

-include_lib("eunit/include/eunit.hrl").

%% The incremental old-code answer checked against the VM itself: a real
%% module loaded twice (code:load_binary) so that old code exists, real
%% processes on it, and after every poll the answer compared with a full
%% check_process_code over every process.

-define(V1, "
-module(bd_oc_a).
-export([v/0, loop/0, ext_loop/0, mkloop/0]).
v() -> 1.
loop() -> receive stop -> ok; _ -> loop() end.
ext_loop() -> receive stop -> ok; _ -> ?MODULE:ext_loop() end.
mkloop() -> fun Wait() -> receive stop -> ok; _ -> Wait() end end.
").

-define(V2, "
-module(bd_oc_a).
-export([v/0, loop/0, ext_loop/0, mkloop/0]).
v() -> 2.
loop() -> receive stop -> ok; _ -> loop() end.
ext_loop() -> receive stop -> ok; _ -> ?MODULE:ext_loop() end.
mkloop() -> fun Wait() -> receive stop -> ok; _ -> Wait() end end.
").

%% Same code, another version: a reload between two polls.
-define(V3, "
-module(bd_oc_a).
-export([v/0, loop/0, ext_loop/0, mkloop/0]).
v() -> 3.
loop() -> receive stop -> ok; _ -> loop() end.
ext_loop() -> receive stop -> ok; _ -> ?MODULE:ext_loop() end.
mkloop() -> fun Wait() -> receive stop -> ok; _ -> Wait() end end.
").

-define(M, bd_oc_a).

%%% FIXTURE %%%

%% The table lives as long as its owner: a process for the whole fixture,
%% as beamdeck_agent_system is in the agent.
setup() ->
    Self = self(),
    Owner = spawn(fun() ->
                          ok = beamdeck_agent_old_code:new_table(),
                          Self ! table,
                          receive stop -> ok end
                  end),
    receive table -> ok after 5000 -> error(no_table) end,
    Bins = maps:from_list([{V, element(2, beamdeck_test_util:compile(S, []))}
                           || {V, S} <- [{v1, ?V1}, {v2, ?V2}, {v3, ?V3}]]),
    {Owner, Bins}.

cleanup({Owner, _Bins}) ->
    _ = code:purge(?M),
    _ = code:delete(?M),
    _ = code:purge(?M),
    Owner ! stop.

load(Bins, V) ->
    _ = code:purge(?M),
    {module, ?M} = code:load_binary(?M, "bd_oc_a.erl", maps:get(V, Bins)).

old_code_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     fun({_, Bins}) ->
             {inorder,
              [{"a process that moves off old code leaves the incremental answer",
                fun() -> moves_off(Bins) end},
               {"a process spawned from an old fun is found without a full pass",
                fun() -> spawned_from_old_fun(Bins) end},
               {"an old fun called by a known process: found by the next full pass",
                fun() -> called_old_fun(Bins) end},
               {"a reload between two polls runs a full pass", fun() -> reloaded(Bins) end},
               {"a module whose old code is purged drops out", fun() -> purged(Bins) end}]}
     end}.

%%% HELPERS %%%

%% A poll as the server makes it, past the budget's memo (its table may
%% exist when other suites started the agent): this module's logic only.
poll() -> poll([?M]).

poll(Watch) ->
    try ets:delete(beamdeck_agent_budget, old_code) catch error:badarg -> true end,
    beamdeck_agent_old_code:old_code(Watch).

%% Each case starts from a full pass of its own. The previous case may
%% have left the same modules with old code at the same versions (v2 over
%% v1), which only the bounded interval tells apart.
first_poll() ->
    ok = beamdeck_agent_old_code:rescan(),
    poll().

entry(R) ->
    [E] = [E || #{module := <<"bd_oc_a">>} = E <- maps:get(modules, R)],
    E.

pids(R) -> lists:sort([P || #{pid := P} <- maps:get(processes, entry(R))]).

%% The truth: every process on the module's old code right now.
truth() ->
    lists:sort([list_to_binary(pid_to_list(P)) || P <- erlang:processes(),
                                                  erlang:check_process_code(P, ?M)]).

bin(P) -> list_to_binary(pid_to_list(P)).

stop_all(Pids) -> beamdeck_test_util:kill_wait(Pids).

%% Loaded v1, processes started on it, then v2 loaded: old code exists.
on_old_code(Bins, Starts) ->
    load(Bins, v1),
    Pids = [spawn(?M, F, []) || F <- Starts],
    beamdeck_test_util:wait_waiting(Pids),
    load(Bins, v2),
    Pids.

%%% TESTS %%%

moves_off(Bins) ->
    [Local, Ext] = on_old_code(Bins, [loop, ext_loop]),
    R1 = first_poll(),
    ?assertEqual(full, maps:get(scan, R1)),
    ?assertEqual(lists:sort([bin(Local), bin(Ext)]), pids(R1)),
    ?assertEqual(truth(), pids(R1)),
    %% The external call moves Ext to the new code; Local stays.
    Ext ! go,
    beamdeck_test_util:wait_until(fun() -> not erlang:check_process_code(Ext, ?M) end),
    R2 = poll(),
    ?assertEqual(incremental, maps:get(scan, R2)),
    ?assertEqual([bin(Local)], pids(R2)),
    ?assertEqual(1, maps:get(count, entry(R2))),
    ?assertEqual(truth(), pids(R2)),
    stop_all([Local]),
    R3 = poll(),
    ?assertEqual(incremental, maps:get(scan, R3)),
    ?assertEqual(0, maps:get(count, entry(R3))),
    ?assert(maps:get(hasOldCode, entry(R3))),
    stop_all([Ext]).

spawned_from_old_fun(Bins) ->
    load(Bins, v1),
    OldFun = ?M:mkloop(),
    [Local] = on_old_code_keep(Bins, [loop]),
    R1 = first_poll(),
    ?assertEqual(full, maps:get(scan, R1)),
    ?assertEqual([bin(Local)], pids(R1)),
    Spawned = spawn(OldFun),
    beamdeck_test_util:wait_waiting([Spawned]),
    ?assert(erlang:check_process_code(Spawned, ?M)),
    R2 = poll(),
    ?assertEqual(incremental, maps:get(scan, R2)),
    ?assertEqual(lists:sort([bin(Local), bin(Spawned)]), pids(R2)),
    ?assertEqual(truth(), pids(R2)),
    stop_all([Local, Spawned]).

called_old_fun(Bins) ->
    load(Bins, v1),
    OldFun = ?M:mkloop(),
    [Local] = on_old_code_keep(Bins, [loop]),
    %% Known to the full pass, on no old code: it calls the old fun later.
    Holder = spawn(fun() -> receive {run, F} -> F() end end),
    beamdeck_test_util:wait_waiting([Holder]),
    R1 = first_poll(),
    ?assertEqual(full, maps:get(scan, R1)),
    ?assertEqual([bin(Local)], pids(R1)),
    Holder ! {run, OldFun},
    beamdeck_test_util:wait_until(fun() -> erlang:check_process_code(Holder, ?M) end),
    %% Between full passes the answer is that of the pids it may concern.
    R2 = poll(),
    ?assertEqual(incremental, maps:get(scan, R2)),
    ?assertEqual([bin(Local)], pids(R2)),
    %% The bounded interval: past it, a full pass finds the holder.
    R3 = beamdeck_test_util:with_env(old_code_rescan_ms, 1000, fun() -> timer:sleep(1001), poll() end),
    ?assertEqual(full, maps:get(scan, R3)),
    ?assertEqual(lists:sort([bin(Local), bin(Holder)]), pids(R3)),
    ?assertEqual(truth(), pids(R3)),
    stop_all([Local, Holder]).

reloaded(Bins) ->
    [Local] = on_old_code(Bins, [loop]),
    %% On v2, the current code: not on old code yet.
    [Current] = [spawn(?M, loop, [])],
    beamdeck_test_util:wait_waiting([Current]),
    R1 = first_poll(),
    ?assertEqual([bin(Local)], pids(R1)),
    ?assertEqual(incremental, maps:get(scan, poll())),
    %% Local dies with the purge; v2 becomes the old code, Current is on it,
    %% and the set of modules with old code is the same as before.
    load(Bins, v3),
    R2 = poll(),
    ?assertEqual(full, maps:get(scan, R2)),
    ?assertEqual([bin(Current)], pids(R2)),
    ?assertEqual(truth(), pids(R2)),
    stop_all([Current]).

purged(Bins) ->
    [Local] = on_old_code(Bins, [loop]),
    R1 = poll([]),
    ?assertMatch([_], [E || #{module := <<"bd_oc_a">>} = E <- maps:get(modules, R1)]),
    stop_all([Local]),
    true = code:soft_purge(?M),
    %% Watched: listed with none; not watched: not listed at all.
    R2 = poll(),
    ?assertMatch(#{count := 0, hasOldCode := false, processes := []}, entry(R2)),
    R3 = poll([]),
    ?assertEqual([], [E || #{module := <<"bd_oc_a">>} = E <- maps:get(modules, R3)]).

%% on_old_code/2 when v1 is loaded already (an old fun was made from it).
on_old_code_keep(Bins, Starts) ->
    Pids = [spawn(?M, F, []) || F <- Starts],
    beamdeck_test_util:wait_waiting(Pids),
    load(Bins, v2),
    Pids.
