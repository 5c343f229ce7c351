%%% Tests of the system views against what the node itself says.
-module(beamdeck_agent_system_tests).

-include_lib("eunit/include/eunit.hrl").

overview_test_() ->
    {setup,
     fun() -> {ok, Pid} = beamdeck_agent_system:start_link(), unlink(Pid), Pid end,
     fun(Pid) -> exit(Pid, shutdown), wait_dead(Pid) end,
     [fun overview_matches_the_node/0,
      fun utilisation_is_measured_between_overviews/0,
      fun wall_time_flag_is_ours_only/0]}.

overview_matches_the_node() ->
    {ok, O} = beamdeck_agent_system:overview(),
    #{counts := #{processes := #{count := PC, limit := PL}, ets := #{limit := EL}, atoms := #{count := AC}},
      memory := #{total := Total, ets := EtsMem, binary := Bin}} = O,
    ?assertEqual(erlang:system_info(process_limit), PL),
    ?assertEqual(erlang:system_info(ets_limit), EL),
    ?assert(abs(PC - erlang:system_info(process_count)) < 50),
    ?assert(AC =< erlang:system_info(atom_count)),
    ?assert(Total >= EtsMem + Bin),
    ?assertEqual(erlang:system_info(schedulers), maps:get(schedulers, O)),
    ?assertEqual(length(erlang:statistics(run_queue_lengths_all)), length(maps:get(runQueues, O))).

utilisation_is_measured_between_overviews() ->
    {ok, _} = beamdeck_agent_system:overview(),
    %% Keep one scheduler busy for a while: utilisation must show it.
    Busy = spawn(fun() -> spin(erlang:monotonic_time(millisecond) + 300) end),
    Ref = monitor(process, Busy),
    receive {'DOWN', Ref, process, Busy, _} -> ok end,
    {ok, #{schedulerUtilization := #{total := Total, perScheduler := Per}}} = beamdeck_agent_system:overview(),
    ?assertEqual(erlang:system_info(schedulers), length(Per)),
    ?assert(lists:all(fun(U) -> U >= 0.0 andalso U =< 1.0 end, Per)),
    %% 300 ms of one busy scheduler out of N over ~300 ms: at least a fifth of one.
    ?assert(lists:max(Per) > 0.2),
    ?assert(Total > 0.0).

wall_time_flag_is_ours_only() ->
    %% Our process enabled it; another process switching it off does not
    %% disable it while ours lives (the flag is reference-counted per process).
    Self = self(),
    spawn(fun() -> Self ! {prev, erlang:system_flag(scheduler_wall_time, false)} end),
    receive {prev, _} -> ok end,
    ?assertNotEqual(undefined, erlang:statistics(scheduler_wall_time)).

utilisation_without_samples_test() ->
    ?assertEqual(null, beamdeck_agent_system:utilisation(undefined, [{1, 10, 20}])),
    N = erlang:system_info(schedulers),
    Prev = [{I, 0, 0} || I <- lists:seq(1, N)],
    Now = [{I, 50, 100} || I <- lists:seq(1, N)],
    #{total := T, perScheduler := Per} = beamdeck_agent_system:utilisation(Prev, Now),
    ?assertEqual(0.5, T),
    ?assertEqual(N, length(Per)).

overview_without_the_process_test() ->
    undefined = whereis(beamdeck_agent_system),
    {ok, O} = beamdeck_agent_system:overview(),
    ?assertEqual(null, maps:get(schedulerUtilization, O)).

ets_tables_test() ->
    T = ets:new(beamdeck_system_test_tab, [named_table, public, set]),
    true = ets:insert(T, [{K, binary:copy(<<"x">>, 100)} || K <- lists:seq(1, 5000)]),
    try
        {ok, #{tables := Tabs, total := Total, partial := false}} =
            beamdeck_agent_system:ets_tables(#{<<"sort">> => <<"memory">>, <<"limit">> => 1000}),
        ?assertEqual(length(ets:all()), Total),
        [Row] = [R || R = #{name := <<"beamdeck_system_test_tab">>} <- Tabs],
        ?assertMatch(#{size := 5000, type := set, protection := public, named := true}, Row),
        ?assertEqual(ets:info(T, memory) * erlang:system_info(wordsize), maps:get(memory, Row)),
        ?assertEqual(list_to_binary(pid_to_list(self())), maps:get(owner, Row)),
        Mems = [maps:get(memory, R) || R <- Tabs],
        ?assertEqual(lists:reverse(lists:sort(Mems)), Mems),
        {ok, #{tables := Two}} = beamdeck_agent_system:ets_tables(#{<<"sort">> => <<"size">>, <<"limit">> => 2}),
        ?assertEqual(2, length(Two))
    after
        ets:delete(T)
    end.

bad_options_test() ->
    ?assertMatch({error, bad_request, _}, beamdeck_agent_system:ets_tables(#{<<"sort">> => <<"owner">>})),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_system:ets_tables(#{<<"limit">> => 0})),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_system:ports(#{<<"limit">> => 1001})),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_system:ports(#{<<"limit">> => <<"5">>})).

ports_test() ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    {ok, S} = gen_tcp:accept(L, 1000),
    ok = gen_tcp:send(C, binary:copy(<<"y">>, 4096)),
    {ok, _} = gen_tcp:recv(S, 4096, 1000),
    try
        {ok, #{ports := Rows, total := Total}} = beamdeck_agent_system:ports(#{<<"sort">> => <<"io">>, <<"limit">> => 1000}),
        ?assertEqual(length(erlang:ports()), Total),
        Id = list_to_binary(erlang:port_to_list(C)),
        [Row] = [R || R = #{id := I} <- Rows, I =:= Id],
        {ok, {_, CPort}} = inet:sockname(C),
        ?assertMatch(#{kind := tcp, name := <<"tcp_inet">>}, Row),
        ?assertEqual(iolist_to_binary(["127.0.0.1:", integer_to_list(Port)]), maps:get(peer, Row)),
        ?assertEqual(iolist_to_binary(["127.0.0.1:", integer_to_list(CPort)]), maps:get(local, Row)),
        ?assert(maps:get(output, Row) >= 4096),
        [SRow] = [R || R = #{id := I} <- Rows, I =:= list_to_binary(erlang:port_to_list(S))],
        ?assert(maps:get(input, SRow) >= 4096),
        ?assertEqual(list_to_binary(pid_to_list(self())), maps:get(owner, Row)),
        [LRow] = [R || R = #{id := I} <- Rows, I =:= list_to_binary(erlang:port_to_list(L))],
        ?assertEqual(null, maps:get(peer, LRow))
    after
        [gen_tcp:close(X) || X <- [C, S, L]]
    end.

port_kind_test() ->
    ?assertEqual(tcp, beamdeck_agent_system:port_kind("tcp_inet")),
    ?assertEqual(file, beamdeck_agent_system:port_kind("efile")),
    ?assertEqual(spawn, beamdeck_agent_system:port_kind("/bin/sh -s unix:cmd")),
    ?assertEqual(other, beamdeck_agent_system:port_kind("tty_sl")).

sort_rows_test() ->
    Rows = [#{name => <<"b">>, size => 1}, #{name => <<"a">>, size => 3}, #{name => <<"c">>, size => 2}],
    ?assertEqual([<<"a">>, <<"b">>], [N || #{name := N} <- beamdeck_agent_system:sort_rows(Rows, <<"name">>, 2)]),
    ?assertEqual([3, 2, 1], [S || #{size := S} <- beamdeck_agent_system:sort_rows(Rows, <<"size">>, 5)]).

spin(Until) ->
    case erlang:monotonic_time(millisecond) < Until of
        true -> spin(Until);
        false -> ok
    end.

wait_dead(Pid) ->
    Ref = monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok after 2000 -> ok end.
