%%% The cost budget: intervals from measured costs, the floor-relative
%%% limit, and the memo of polled passes (no timing: costs are given, or
%%% made large by a sleep that only lengthens the interval).
-module(beamdeck_agent_budget_tests).

-include_lib("eunit/include/eunit.hrl").

-define(B, beamdeck_agent_budget).

interval_is_cost_over_share_test() ->
    %% 30 ms at 1 % of a scheduler: every 3 s.
    ?assertEqual(3000, ?B:interval_ms(30000, 0.01, 1000, 60000)),
    %% Cheap passes run at the floor interval, dear ones at most at the cap.
    ?assertEqual(1000, ?B:interval_ms(10, 0.01, 1000, 60000)),
    ?assertEqual(60000, ?B:interval_ms(10000000, 0.01, 1000, 60000)),
    %% Rounds up: 1.001 ms at half a scheduler is 2.002 ms.
    ?assertEqual(3, ?B:interval_ms(1001, 0.5, 1, 60000)).

share_follows_the_settings_test() ->
    ?assertEqual(float(beamdeck_agent_config:get(budget_10k)), ?B:share(0)),
    ?assertEqual(float(beamdeck_agent_config:get(budget_100k)), ?B:share(1000000)),
    Mid = ?B:share(55000),
    ?assert(Mid > ?B:share(10000) andalso Mid < ?B:share(100000)).

floor_relative_interval_test() ->
    %% A tick that costs its walk alone may run every 2.5 s (0.4 of a pass
    %% a second); one that costs twice its walk every 5 s.
    ?assertEqual(2500, ?B:floor_interval_ms(40000, 40000)),
    ?assertEqual(5000, ?B:floor_interval_ms(80000, 40000)),
    %% Unknown walk cost: no limit from this side.
    ?assertEqual(0, ?B:floor_interval_ms(80000, 0)).

reads_fill_what_the_walk_leaves_test() ->
    %% 0.4 of a 10 ms walk a second, at 4 s: 16 ms a tick; minus the walk
    %% and 2 ms of other work: 4 ms, at 20 us a read: 200 reads.
    ?assertEqual(200, ?B:reads(10000, 2000, 20, 4000)),
    %% A longer interval leaves more; a dear tick leaves none (never negative).
    ?assertEqual(400, ?B:reads(10000, 2000, 20, 5000)),
    ?assertEqual(0, ?B:reads(10000, 20000, 20, 4000)),
    ?assertEqual(0, ?B:reads(10000, 0, 20, 2500)),
    %% Nothing measured yet.
    ?assertEqual(unknown, ?B:reads(0, 0, 20, 4000)),
    ?assertEqual(unknown, ?B:reads(10000, 0, 0, 4000)).

due_test() ->
    ?assert(?B:due(undefined, 5000, 0)),
    ?assertNot(?B:due(1000, 5000, 5999)),
    ?assert(?B:due(1000, 5000, 6000)).

memo_test_() ->
    {setup,
     fun() ->
             Self = self(),
             Owner = spawn(fun() -> ok = ?B:new_table(), Self ! ready, receive stop -> ok end end),
             receive ready -> Owner end
     end,
     fun(Owner) ->
             Ref = monitor(process, Owner),
             Owner ! stop,
             receive {'DOWN', Ref, process, Owner, _} -> ok end
     end,
     [fun memo_reuses_until_due/0, fun memo_reruns_on_a_new_stamp/0]}.

memo_reuses_until_due() ->
    Runs = counters:new(1, []),
    Pass = fun() -> counters:add(Runs, 1, 1), counters:get(Runs, 1) end,
    %% First call runs; the next, at once, is within the 60 s minimum.
    ?assertEqual(1, ?B:memo(t_reuse, s, 1000, 60000, Pass)),
    ?assertEqual(1, ?B:memo(t_reuse, s, 1000, 60000, Pass)),
    ?assertEqual(1, counters:get(Runs, 1)),
    %% With a 1 ms minimum and a cheap pass it is due again soon.
    ?assertEqual(2, ?B:memo(t_due, s, 1000, 1, Pass)),
    timer:sleep(1100),
    ?assertEqual(3, ?B:memo(t_due, s, 1000, 1, Pass)).

memo_reruns_on_a_new_stamp() ->
    Runs = counters:new(1, []),
    Pass = fun() -> counters:add(Runs, 1, 1), counters:get(Runs, 1) end,
    ?assertEqual(1, ?B:memo(t_stamp, a, 1000, 60000, Pass)),
    ?assertEqual(2, ?B:memo(t_stamp, b, 1000, 60000, Pass)),
    ?assertEqual(2, ?B:memo(t_stamp, b, 1000, 60000, Pass)).

memo_without_a_table_runs_every_time_test() ->
    undefined = ets:info(beamdeck_agent_budget, name),
    Runs = counters:new(1, []),
    Pass = fun() -> counters:add(Runs, 1, 1), counters:get(Runs, 1) end,
    ?assertEqual(1, ?B:memo(t_none, s, 1000, 60000, Pass)),
    ?assertEqual(2, ?B:memo(t_none, s, 1000, 60000, Pass)).
