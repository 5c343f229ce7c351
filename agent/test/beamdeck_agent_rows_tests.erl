-module(beamdeck_agent_rows_tests).

-include_lib("eunit/include/eunit.hrl").

static(I) -> {{m, f, I}, [sup, <<"top">>], app, null}.

put_get_update_remove_test() ->
    R = beamdeck_agent_rows:new(),
    P = self(),
    ?assertEqual(undefined, beamdeck_agent_rows:get(R, P)),
    ?assertNot(beamdeck_agent_rows:member(R, P)),
    ?assertNot(beamdeck_agent_rows:update(R, P, 1, 2, 3)),
    ok = beamdeck_agent_rows:put(R, P, {11, 22, 33, static(1)}),
    ?assert(beamdeck_agent_rows:member(R, P)),
    ?assertEqual({11, 22, 33, static(1)}, beamdeck_agent_rows:get(R, P)),
    ?assertEqual(33, beamdeck_agent_rows:memory(R, P)),
    ?assert(beamdeck_agent_rows:update(R, P, 12, 23, 34)),
    %% The counters change, the static fields stay.
    ?assertEqual({12, 23, 34, static(1)}, beamdeck_agent_rows:get(R, P)),
    ?assertEqual([P], beamdeck_agent_rows:keys(R)),
    ok = beamdeck_agent_rows:remove(R, [P]),
    ?assertEqual(0, beamdeck_agent_rows:size(R)),
    ?assertEqual(undefined, beamdeck_agent_rows:memory(R, P)),
    ok = beamdeck_agent_rows:delete(R).

%% Many processes with the same static fields share one stored copy.
statics_shared_test() ->
    R = beamdeck_agent_rows:new(),
    Pids = [spawn(fun() -> ok end) || _ <- lists:seq(1, 50)],
    [ok = beamdeck_agent_rows:put(R, P, {1, 1, 1, static(I rem 3)})
     || {I, P} <- lists:zip(lists:seq(1, 50), Pids)],
    ?assertEqual(50, beamdeck_agent_rows:size(R)),
    ?assertEqual(3, beamdeck_agent_rows:statics(R)),
    [?assertEqual({1, 1, 1, static(I rem 3)}, beamdeck_agent_rows:get(R, P))
     || {I, P} <- lists:zip(lists:seq(1, 50), Pids)],
    ok = beamdeck_agent_rows:clear(R),
    ?assertEqual({0, 0}, {beamdeck_agent_rows:size(R), beamdeck_agent_rows:statics(R)}),
    ok = beamdeck_agent_rows:delete(R).

%% Past the id table's bound, static fields are kept in the row: still right.
statics_bounded_test_() ->
    {timeout, 60, fun() ->
        R = beamdeck_agent_rows:new(),
        N = 10050,
        Pids = [list_to_pid("<0." ++ integer_to_list(I) ++ ".0>") || I <- lists:seq(1, N)],
        [ok = beamdeck_agent_rows:put(R, P, {1, 1, 1, static(I)})
         || {I, P} <- lists:zip(lists:seq(1, N), Pids)],
        ?assertEqual(10000, beamdeck_agent_rows:statics(R)),
        ?assertEqual({1, 1, 1, static(N)}, beamdeck_agent_rows:get(R, lists:last(Pids))),
        ?assertEqual({1, 1, 1, static(1)}, beamdeck_agent_rows:get(R, hd(Pids))),
        ok = beamdeck_agent_rows:delete(R)
    end}.

top_memory_and_dead_test() ->
    R = beamdeck_agent_rows:new(),
    Alive = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 5)],
    Dead = spawn(fun() -> ok end),
    Ref = monitor(process, Dead),
    receive {'DOWN', Ref, process, Dead, _} -> ok end,
    [ok = beamdeck_agent_rows:put(R, P, {0, 0, M * 100, static(0)})
     || {M, P} <- lists:zip(lists:seq(1, 6), Alive ++ [Dead])],
    ?assertEqual([Dead, lists:nth(5, Alive), lists:nth(4, Alive)],
                 beamdeck_agent_rows:top_memory(R, 3)),
    ?assertEqual([], beamdeck_agent_rows:top_memory(R, 0)),
    ?assertEqual([Dead], beamdeck_agent_rows:dead(R)),
    [P ! stop || P <- Alive],
    ok = beamdeck_agent_rows:delete(R).

%% The rows live outside the owner's heap: 20k rows leave it small.
off_heap_test() ->
    Self = self(),
    Pid = spawn(fun() ->
                        R = beamdeck_agent_rows:new(),
                        [ok = beamdeck_agent_rows:put(R, list_to_pid("<0." ++ integer_to_list(I) ++ ".0>"),
                                                      {I, I, I, static(I rem 7)})
                         || I <- lists:seq(1, 20000)],
                        erlang:garbage_collect(),
                        {memory, Heap} = process_info(self(), memory),
                        Self ! {self(), Heap, beamdeck_agent_rows:size(R)}
                end),
    receive
        {Pid, Heap, Size} ->
            ?assertEqual(20000, Size),
            %% 20k entries of a map would be over 1 MB of heap.
            ?assert(Heap < 200 * 1024)
    after 30000 -> error(timeout)
    end.

%% Reductions are kept modulo 2^32 beside the hash: their growth is still
%% right across the wrap, and the hash comes back whole.
reductions_wrap_test() ->
    R = beamdeck_agent_rows:new(),
    P = self(),
    Big = (1 bsl 32) + 5,
    ok = beamdeck_agent_rows:put(R, P, {(1 bsl 27) - 1, (1 bsl 32) - 10, 7, static(1)}),
    {Hash, Sent, 7, _} = beamdeck_agent_rows:get(R, P),
    ?assertEqual((1 bsl 27) - 1, Hash),
    ?assertEqual(15, beamdeck_agent_rows:reds_grown(Sent, Big)),
    ?assert(beamdeck_agent_rows:update(R, P, 3, Big, 8)),
    ?assertEqual({3, 5, 8, static(1)}, beamdeck_agent_rows:get(R, P)),
    ?assertEqual(0, beamdeck_agent_rows:reds_grown(5, Big)),
    ok = beamdeck_agent_rows:delete(R).

