-module(beamdeck_agent_procinfo_tests).

-include_lib("eunit/include/eunit.hrl").

-import(beamdeck_test_util, [wait_until/1, wait_until/2]).

-export([gs_init/1, init/1, handle_call/3, handle_cast/2]).

%% A process that keeps every message it gets until told to stop.
holder() ->
    spawn(fun() -> receive stop -> ok end end).

fill(P, N) -> [P ! {msg, I} || I <- lists:seq(1, N)], ok.

stop(P) ->
    Ref = monitor(process, P),
    exit(P, kill),
    receive {'DOWN', Ref, process, P, _} -> ok end.

mailbox_of_500_test() ->
    P = holder(),
    ok = fill(P, 500),
    {NZ, Changed} = beamdeck_agent_procinfo:mailbox_scan(#{}),
    ?assertEqual(500, maps:get(P, NZ)),
    ?assert(lists:member({P, 500}, Changed)),
    {ok, Rec} = beamdeck_agent_procinfo:record(P),
    ?assertEqual(500, maps:get(mailbox, Rec)),
    stop(P).

mailbox_scan_reports_only_changes_test() ->
    P = holder(),
    ok = fill(P, 3),
    {NZ1, _} = beamdeck_agent_procinfo:mailbox_scan(#{}),
    %% Same length again: not reported.
    {NZ2, Changed2} = beamdeck_agent_procinfo:mailbox_scan(NZ1),
    ?assertEqual(false, lists:keymember(P, 1, Changed2)),
    ok = fill(P, 2),
    {NZ3, Changed3} = beamdeck_agent_procinfo:mailbox_scan(NZ2),
    ?assertEqual({P, 5}, lists:keyfind(P, 1, Changed3)),
    %% Emptied: reported as 0 and dropped from the non-zero map.
    Q = spawn(fun() -> receive go -> drain() end end),
    ok = fill(Q, 4),
    {NZ4, _} = beamdeck_agent_procinfo:mailbox_scan(NZ3),
    ?assertEqual(4, maps:get(Q, NZ4)),
    Q ! go,
    wait_until(fun() -> process_info(Q, message_queue_len) =:= {message_queue_len, 0} end, 1000),
    {NZ5, Changed5} = beamdeck_agent_procinfo:mailbox_scan(NZ4),
    ?assertEqual({Q, 0}, lists:keyfind(Q, 1, Changed5)),
    ?assertNot(is_map_key(Q, NZ5)),
    %% A process that died with mail is not reported as emptied.
    stop(P),
    {_, Changed6} = beamdeck_agent_procinfo:mailbox_scan(NZ5),
    ?assertEqual(false, lists:keymember(P, 1, Changed6)),
    stop(Q).

drain() ->
    receive
        stop -> ok;
        _ -> drain()
    end.

scan_finds_new_hits_and_slice_test() ->
    Ps = [holder() || _ <- lists:seq(1, 10)],
    All = erlang:processes(),
    Known = maps:from_keys(All -- Ps, x),
    #{new := New, hits := Hits, total := Total, slice := Slice0} =
        beamdeck_agent_procinfo:scan(Known, [], 0, 0),
    ?assertEqual([], Slice0),
    ?assertEqual([], Ps -- New),
    ?assert(Hits =< map_size(Known)),
    ?assert(Total >= length(All) - 1),
    %% A slice of 5 known processes after skipping 3.
    #{slice := Slice} = beamdeck_agent_procinfo:scan(maps:from_keys(All, x), All, 3, 5),
    ?assertEqual(5, length(Slice)),
    ?assertEqual(lists:sublist(All, 4, 5), Slice),
    %% A dead known pid is not a hit.
    [Dead | _] = Ps,
    stop(Dead),
    Known2 = maps:from_keys(Ps, x),
    #{hits := Hits2, new := New2} = beamdeck_agent_procinfo:scan(Known2, [], 0, 0),
    ?assertEqual(9, Hits2),
    ?assertNot(lists:member(Dead, New2)),
    [stop(P) || P <- tl(Ps)].

%% The previous walk only makes membership cheaper: with it, without it,
%% or with it scrambled, the scan finds the same new and known processes.
scan_with_previous_walk_test() ->
    Old = [holder() || _ <- lists:seq(1, 300)],
    #{walked := Walked0} = beamdeck_agent_procinfo:scan(#{}, [], 0, 0),
    Walked = case beamdeck_agent_procinfo:cursor_mode() of
                 list -> Walked0;
                 %% The OTP 28+ iterator keeps no list; give scan/4 one anyway.
                 iterator -> ?assertEqual([], Walked0), erlang:processes()
             end,
    ?assertEqual([], Old -- Walked),
    Known = maps:from_keys(Walked, x),
    %% Deaths in a run longer than the look-ahead, and scattered; births.
    {Run, Rest} = lists:split(100, Old),
    Scattered = [P || {I, P} <- lists:zip(lists:seq(1, length(Rest)), Rest), I rem 7 =:= 0],
    [stop(P) || P <- Run ++ Scattered],
    Born = [holder() || _ <- lists:seq(1, 50)],
    Scans = [beamdeck_agent_procinfo:scan(Known, Prev, 0, 0)
             || Prev <- [Walked, [], lists:reverse(Walked), tl(Walked)]],
    [#{new := New, hits := Hits} | _] = Scans,
    ?assertEqual([], Born -- New),
    ?assertEqual([], [P || P <- New, is_map_key(P, Known)]),
    ?assertEqual(length([P || P <- Walked, is_process_alive(P)]), Hits),
    [?assertEqual({lists:sort(New), Hits}, {lists:sort(N2), H2})
     || #{new := N2, hits := H2} <- tl(Scans)],
    [stop(P) || P <- (Rest -- Scattered) ++ Born].

scan_reports_nonzero_mailboxes_test() ->
    P = holder(),
    ok = fill(P, 7),
    #{nonzero := NZ} = beamdeck_agent_procinfo:scan(#{}, [], 0, 0),
    ?assertEqual(7, maps:get(P, NZ)),
    ?assertNot(lists:any(fun(V) -> V =:= 0 end, maps:values(NZ))),
    stop(P).

%% A reset's scan (nothing known): every process is new, the mailboxes are
%% read, and nothing is counted as seen before.
scan_with_nothing_known_test() ->
    P = holder(),
    ok = fill(P, 5),
    #{nonzero := NZ, new := New, hits := Hits, slice := Slice, total := Total, gone := Gone} =
        beamdeck_agent_procinfo:scan(none, [self()], 0, 10),
    ?assertEqual(5, maps:get(P, NZ)),
    ?assert(lists:member(P, New)),
    ?assert(lists:member(self(), New)),
    ?assertEqual({0, [], []}, {Hits, Slice, Gone}),
    ?assert(Total >= 2 andalso Total =< length(New)),
    stop(P).

record_of_proc_lib_process_test() ->
    Parent = self(),
    {ok, Sup} = proc_lib:start(?MODULE, gs_init, [{Parent, bd_procinfo_sup_test}]),
    %% A gen_server whose real initial call is hidden behind proc_lib.
    {ok, Gs} = gen_server:start(?MODULE, [], []),
    {ok, Rec} = beamdeck_agent_procinfo:record(Gs),
    ?assertEqual(<<"beamdeck_agent_procinfo_tests:init/1">>, maps:get(initialCall, Rec)),
    ?assertEqual(list_to_binary(pid_to_list(Gs)), maps:get(pid, Rec)),
    ?assertEqual(null, maps:get(name, Rec)),
    ?assertEqual(<<"waiting">>, maps:get(status, Rec)),
    %% gen_server:loop/7 up to OTP 28, loop/5 on 29.
    ?assertMatch(<<"gen_server:loop/", _/binary>>, maps:get(currentFunction, Rec)),
    ?assertEqual([list_to_binary(pid_to_list(self()))], maps:get(ancestors, Rec)),
    ?assertEqual(list_to_binary(pid_to_list(self())), maps:get(parent, Rec)),
    ?assert(is_integer(maps:get(memory, Rec)) andalso maps:get(memory, Rec) > 0),
    %% proc_lib ancestors are names when the parent is registered.
    {ok, SupRec} = beamdeck_agent_procinfo:record(Sup),
    ?assertEqual(<<"bd_procinfo_sup_test">>, maps:get(name, SupRec)),
    ?assertEqual(<<"beamdeck_agent_procinfo_tests:gs_init/1">>, maps:get(initialCall, SupRec)),
    Sup ! {spawn_child, self()},
    Child = receive {child, C} -> C after 1000 -> error(no_child) end,
    {ok, ChildRec} = beamdeck_agent_procinfo:record(Child),
    ?assertEqual([<<"bd_procinfo_sup_test">>, list_to_binary(pid_to_list(self()))],
                 maps:get(ancestors, ChildRec)),
    ?assert(lists:member(list_to_binary(pid_to_list(Sup)), maps:get(links, ChildRec))),
    gen_server:stop(Gs),
    stop(Child),
    stop(Sup).

%% gen_server callbacks for the proc_lib initial-call test.
init([]) -> {ok, nostate}.
handle_call(_, _, S) -> {reply, ok, S}.
handle_cast(_, S) -> {noreply, S}.

%% proc_lib entry used above: registers, then spawns linked proc_lib children on request.
gs_init({Parent, Name}) ->
    register(Name, self()),
    proc_lib:init_ack(Parent, {ok, self()}),
    gs_loop().

gs_loop() ->
    receive
        {spawn_child, From} ->
            C = proc_lib:spawn_link(fun() -> receive stop -> ok end end),
            From ! {child, C},
            gs_loop();
        stop -> ok
    end.

record_application_from_group_leader_test() ->
    {ok, Rec} = beamdeck_agent_procinfo:record(whereis(code_server)),
    ?assertEqual(<<"kernel">>, maps:get(application, Rec)),
    ?assertEqual(<<"code_server">>, maps:get(name, Rec)),
    P = holder(),
    {ok, PRec} = beamdeck_agent_procinfo:record(P),
    ?assertEqual(null, maps:get(application, PRec)),
    stop(P).

%% A process spawned over rpc has a group leader on another node.
remote_group_leader_test() ->
    Node = <<"bd_fake@nohost">>,
    Remote = binary_to_term(<<131, 88, 100, (byte_size(Node)):16, Node/binary,
                              0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1>>),
    P = holder(),
    true = group_leader(Remote, P),
    {ok, Rec} = beamdeck_agent_procinfo:record(P),
    ?assertEqual(null, maps:get(application, Rec)),
    stop(P).

read_new_reads_static_fields_once_test() ->
    {ok, Gs} = gen_server:start(?MODULE, [], []),
    {Dyn, Static, Apps} = beamdeck_agent_procinfo:read_new(Gs, #{}),
    ?assertEqual({{?MODULE, init, 1}, [self()], undefined, null}, Static),
    %% The group leader's application is cached (here: none).
    ?assertEqual(1, map_size(Apps)),
    {_, _, Apps2} = beamdeck_agent_procinfo:read_new(Gs, Apps),
    ?assertEqual(Apps, Apps2),
    %% Later reads: dynamic items only; the record takes the cached fields.
    Dyn2 = beamdeck_agent_procinfo:read(Gs),
    Rec = beamdeck_agent_procinfo:record(Gs, Dyn2, Static, 42),
    ?assertEqual(42, maps:get(mailbox, Rec)),
    ?assertEqual(<<"beamdeck_agent_procinfo_tests:init/1">>, maps:get(initialCall, Rec)),
    ?assertEqual(beamdeck_agent_procinfo:hash(Dyn), beamdeck_agent_procinfo:hash(Dyn2)),
    ?assert(beamdeck_agent_procinfo:reductions(Dyn2) >= beamdeck_agent_procinfo:reductions(Dyn)),
    ?assertEqual(element(2, process_info(Gs, memory)), beamdeck_agent_procinfo:memory(Dyn2)),
    %% A real change (a registered name) changes the hash.
    true = register(bd_procinfo_hash_test, Gs),
    ?assertNotEqual(beamdeck_agent_procinfo:hash(Dyn2),
                    beamdeck_agent_procinfo:hash(beamdeck_agent_procinfo:read(Gs))),
    gen_server:stop(Gs).

dead_process_reads_are_undefined_test() ->
    P = holder(),
    stop(P),
    ?assertEqual(undefined, beamdeck_agent_procinfo:read(P)),
    ?assertEqual(undefined, beamdeck_agent_procinfo:read_new(P, #{})),
    ?assertEqual(undefined, beamdeck_agent_procinfo:record(P)),
    ?assertEqual(undefined, beamdeck_agent_procinfo:initial_call(P)),
    ?assertEqual(gone, beamdeck_agent_procinfo:dict_get(P, '$initial_call')).

dict_get_test() ->
    Self = self(),
    P = spawn(fun() -> put(color, blue), Self ! ready, receive stop -> ok end end),
    receive ready -> ok end,
    ?assertEqual({ok, blue}, beamdeck_agent_procinfo:dict_get(P, color)),
    ?assertEqual(undefined, beamdeck_agent_procinfo:dict_get(P, shape)),
    stop(P).

links_are_capped_test() ->
    Self = self(),
    P = spawn(fun() ->
                      [spawn_link(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 300)],
                      Self ! ready,
                      receive stop -> ok end
              end),
    receive ready -> ok end,
    {ok, Rec} = beamdeck_agent_procinfo:record(P),
    ?assertEqual(200, length(maps:get(links, Rec))),
    stop(P).

cursor_walks_every_process_test() ->
    Before = erlang:processes(),
    Walked = walk(beamdeck_agent_procinfo:cursor(), []),
    Missed = [P || P <- Before, not lists:member(P, Walked), is_process_alive(P)],
    ?assertEqual([], Missed),
    ?assert(lists:member(self(), Walked)),
    ?assert(lists:member(whereis(code_server), Walked)).

walk(C, Acc) ->
    case beamdeck_agent_procinfo:next(C) of
        none -> Acc;
        {P, Rest} -> walk(Rest, [P | Acc])
    end.


%% The scan names the known processes that died since the previous walk
%% (`gone'), so the sampler needs no second pass to find them: in the
%% middle of the walk and at its end (the last spawned). On OTP 28+ (the
%% iterator, no list of the walk) it names none: the sampler asks instead.
scan_finds_the_dead_on_its_way_test() ->
    Ps = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 50)],
    #{walked := Walked} = beamdeck_agent_procinfo:scan(#{}, [], 0, 0),
    case beamdeck_agent_procinfo:cursor_mode() of
        list -> dead_named(Ps, Walked);
        iterator -> dead_not_named(Ps, Walked)
    end,
    [P ! stop || P <- Ps].

dead_not_named(Ps, Walked) ->
    ?assertEqual([], Walked),
    Known = maps:from_keys(erlang:processes(), x),
    kill(hd(Ps)),
    #{gone := Gone, hits := Hits} = beamdeck_agent_procinfo:scan(Known, Walked, 0, 0),
    ?assertEqual([], Gone),
    ?assert(Hits < map_size(Known)).

kill(P) ->
    Ref = monitor(process, P),
    exit(P, kill),
    receive {'DOWN', Ref, _, _, _} -> ok end.

dead_named(Ps, Walked) ->
    Known = maps:from_keys(Walked, x),
    Middle = lists:nth(10, Ps),
    Last = lists:last(Ps),
    Killed = [Middle, lists:nth(11, Ps), Last],
    lists:foreach(fun kill/1, Killed),
    #{gone := Gone, hits := Hits} = beamdeck_agent_procinfo:scan(Known, Walked, 0, 0),
    Dead = [P || P <- Walked, not is_process_alive(P)],
    ?assertEqual(lists:sort(Dead), lists:sort([P || P <- Gone, is_map_key(P, Known)])),
    ?assert(lists:all(fun(P) -> lists:member(P, Gone) end, Killed)),
    ?assertEqual(map_size(Known) - length(Dead), Hits).
