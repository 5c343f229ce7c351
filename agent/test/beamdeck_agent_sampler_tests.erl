-module(beamdeck_agent_sampler_tests).

-include_lib("eunit/include/eunit.hrl").

-define(FRAME_LIMIT, 512 * 1024).

%%% Helpers %%%

holder() -> spawn(fun() -> receive stop -> ok end end).

fill(P, N) -> [P ! {msg, I} || I <- lists:seq(1, N)], ok.

stop(P) ->
    Ref = monitor(process, P),
    exit(P, kill),
    receive {'DOWN', Ref, process, P, _} -> ok end.

pid(P) -> list_to_binary(pid_to_list(P)).

upserted(Frames) -> [maps:get(pid, R) || F <- Frames, R <- maps:get(upsert, F)].

pairs(Frames) -> [{P, N} || F <- Frames, [P, N] <- maps:get(mailbox, F)].

removed(Frames) -> [P || F <- Frames, P <- maps:get(remove, F)].

record_of(P, Frames) ->
    [R] = [R || F <- Frames, R <- maps:get(upsert, F), maps:get(pid, R) =:= pid(P)],
    R.

%% The mailbox length the frames tell the server, by pair or by record.
mailbox_told(P, Frames) ->
    case [N || {Q, N} <- pairs(Frames), Q =:= pid(P)] of
        [N] -> {pair, N};
        [] -> {record, maps:get(mailbox, record_of(P, Frames))}
    end.

%% Wait until freshly spawned processes sit in their receive.
settle(Ps) ->
    case lists:all(fun(P) -> process_info(P, status) =:= {status, waiting} end, Ps) of
        true -> ok;
        false -> timer:sleep(5), settle(Ps)
    end.

encoded_size(Frame) -> iolist_size(beamdeck_agent_json:encode(Frame)).
%%% Pure sampling: reset and deltas %%%

first_sample_is_a_reset_of_every_process_test() ->
    {Frames, _} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
    [First | Rest] = Frames,
    ?assertEqual(true, maps:get(reset, First)),
    ?assert(lists:all(fun(F) -> maps:get(reset, F) =:= false end, Rest)),
    Pids = upserted(Frames),
    ?assertEqual(length(Pids), length(lists:usort(Pids))),
    %% The tick's last frame carries its total and stats (records stream before).
    Last = lists:last(Frames),
    ?assertEqual(maps:get(total, Last), length(Pids)),
    Alive = [pid(P) || P <- erlang:processes()],
    ?assert(length(Alive -- Pids) =< 1),  % at most a process born since
    ?assertEqual(lists:seq(1, length(Frames)), [maps:get(seq, F) || F <- Frames]),
    Stats = maps:get(stats, Last),
    [?assert(is_integer(maps:get(K, Stats))) || K <- [scanUs, sampleUs, intervalMs, dropped]],
    ?assert(maps:get(intervalMs, Stats) >= 1000).

%% A reset's records are handed out a frame at a time while it reads (the
%% sampler never holds them all): with 2500 more processes the emitter sees
%% three or more frames of records, then the tick's last frame with stats.
reset_streams_frames_as_it_reads_test_() ->
    {timeout, 60, fun() ->
        Ps = [holder() || _ <- lists:seq(1, 2500)],
        try
            Emit = fun(F, Acc) -> [F | Acc] end,
            {Rev, _} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new(), Emit, []),
            Frames = lists:reverse(Rev),
            {Streamed, [Last]} = lists:split(length(Frames) - 1, Frames),
            ?assert(length(Streamed) >= 3),
            ?assertEqual([true], lists:usort([maps:get(reset, hd(Frames))])),
            ?assertEqual([false], lists:usort([maps:get(reset, F) || F <- tl(Frames)])),
            ?assertEqual([false], lists:usort([is_map_key(stats, F) || F <- Streamed])),
            ?assert(is_map_key(stats, Last)),
            %% Rows are written as records are read: totals grow, the last is all.
            Totals = [maps:get(total, F) || F <- Frames],
            ?assertEqual(Totals, lists:sort(Totals)),
            ?assert(hd(Totals) < maps:get(total, Last)),
            ?assertEqual(length(upserted(Frames)), maps:get(total, Last)),
            Sent = maps:from_keys(upserted(Frames), true),
            ?assertEqual([], [P || P <- Ps, not is_map_key(pid(P), Sent)])
        after
            [stop(P) || P <- Ps]
        end
    end}.

deltas_new_removed_changed_test() ->
    beamdeck_test_util:with_env([{top_n, 0}, {min_interval_ms, 1000}], fun() ->
        Idle = holder(),
        Doomed = holder(),
        Mail = holder(),
        settle([Idle, Doomed, Mail]),
        {_, S0} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
        {_, S1} = beamdeck_agent_sampler:sample(S0),
        %% New, removed, mailbox changed.
        New = holder(),
        stop(Doomed),
        ok = fill(Mail, 5),
        {F2, S2} = beamdeck_agent_sampler:sample(S1),
        ?assert(lists:all(fun(F) -> maps:get(reset, F) =:= false end, F2)),
        ?assert(lists:member(pid(New), upserted(F2))),
        ?assertEqual(0, maps:get(mailbox, record_of(New, F2))),
        ?assert(lists:member(pid(Doomed), removed(F2))),
        ?assertMatch({_, 5}, mailbox_told(Mail, F2)),
        %% An idle process is not sent again: its record has not changed.
        ?assertNot(lists:member(pid(Idle), upserted(F2))),
        %% Nothing changed for Mail: no pair; then its mailbox empties: 0.
        {F3, S3} = beamdeck_agent_sampler:sample(S2),
        ?assertEqual([], [X || {P, _} = X <- pairs(F3), P =:= pid(Mail)]),
        ?assertNot(lists:member(pid(Doomed), removed(F3))),
        stop(Mail),
        Drained = spawn(fun() -> receive go -> drain() end end),
        ok = fill(Drained, 2),
        {F4, S4} = beamdeck_agent_sampler:sample(S3),
        ?assertEqual(2, maps:get(mailbox, record_of(Drained, F4))),
        ?assert(lists:member(pid(Mail), removed(F4))),
        Drained ! go,
        wait_empty(Drained),
        {F5, _} = beamdeck_agent_sampler:sample(S4),
        ?assertMatch({_, 0}, mailbox_told(Drained, F5)),
        [stop(P) || P <- [Idle, New, Drained]]
    end).

drain() ->
    receive
        stop -> ok;
        _ -> drain()
    end.

wait_empty(P) ->
    case process_info(P, message_queue_len) of
        {message_queue_len, 0} -> ok;
        _ -> timer:sleep(5), wait_empty(P)
    end.

mailbox_changes_travel_as_pairs_test() ->
    beamdeck_test_util:with_env([{top_n, 0}], fun() ->
        Ps = [holder() || _ <- lists:seq(1, 4000)],
        settle(Ps),
        {_, S0} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
        {_, S1} = beamdeck_agent_sampler:sample(S0),
        Filled = lists:sublist(Ps, 1000),
        [ok = fill(P, 3) || P <- Filled],
        {F2, S2} = beamdeck_agent_sampler:sample(S1),
        Told = [mailbox_told(P, F2) || P <- Filled],
        ?assertEqual([3], lists:usort([N || {_, N} <- Told])),
        %% Only the rolling slice (100..2000 a tick) is re-read in full:
        %% most changes go out as `[pid, len]' pairs, not records.
        ?assert(length([x || {pair, _} <- Told]) >= 800),
        ?assert(length(upserted(F2)) =< 200),
        %% Unchanged next tick: no pair for them.
        {F3, _} = beamdeck_agent_sampler:sample(S2),
        Again = maps:from_keys([pid(P) || P <- Filled], true),
        ?assertEqual([], [Q || {Q, _} <- pairs(F3), is_map_key(Q, Again)]),
        [stop(P) || P <- Ps]
    end).

changed_record_is_resent_test() ->
    beamdeck_test_util:with_env([{top_n, 0}], fun() ->
        Self = self(),
        P = spawn(fun() -> receive {name, N} -> register(N, self()), Self ! named end,
                           receive stop -> ok end end),
        settle([P]),
        {_, S0} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
        {_, S1} = beamdeck_agent_sampler:sample(S0),
        {F2, S2} = beamdeck_agent_sampler:sample(S1),
        ?assertNot(lists:member(pid(P), upserted(F2))),
        P ! {name, bd_sampler_renamed},
        receive named -> ok end,
        %% The rolling slice (at least 10 a tick) reaches it in the end.
        Ticks = erlang:system_info(process_count) div 10 + 2,
        ?assertEqual(<<"bd_sampler_renamed">>, maps:get(name, resent(P, S2, Ticks))),
        stop(P)
    end).

resent(P, _S, 0) -> error({not_resent, P});
resent(P, S, Ticks) ->
    {F, S1} = beamdeck_agent_sampler:sample(S),
    case lists:member(pid(P), upserted(F)) of
        true -> record_of(P, F);
        false -> resent(P, S1, Ticks - 1)
    end.

slice_follows_the_budget_test() ->
    beamdeck_test_util:with_env([{top_n, 20}], fun() ->
        Take = fun beamdeck_agent_sampler:slice_take/4,
        %% Nothing measured yet: a thirtieth of the table, 100..2000.
        ?assertEqual(334, Take(0, 0, 0, 10000)),
        %% A 10 ms walk allows 16 ms a tick at 4 s: 6 ms left, 1 ms of it
        %% for the rest, 10 us a read: 500 reads, 40 for the top-N, but at
        %% most the thirtieth.
        ?assertEqual(334, Take(10000, 1000, 10, 10000)),
        ?assertEqual(460, Take(10000, 1000, 10, 100000)),
        %% Dear reads: fewer; none left: the floor of 10.
        ?assertEqual(60, Take(10000, 1000, 50, 100000)),
        ?assertEqual(10, Take(10000, 6000, 10, 100000))
    end).

%% The top-N by mailbox are re-read every tick but sent only when their
%% record changed: the server keeps the last one.
top_n_by_mailbox_sent_when_changed_test() ->
    beamdeck_test_util:with_env([{top_n, 2}], fun() ->
        Big = holder(),
        Bigger = holder(),
        Small = holder(),
        ok = fill(Big, 300),
        ok = fill(Bigger, 400),
        ok = fill(Small, 1),
        settle([Big, Bigger, Small]),
        {F0, S0} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
        ?assertEqual(400, maps:get(mailbox, record_of(Bigger, F0))),
        {_, S1} = beamdeck_agent_sampler:sample(S0),
        {F2, S2} = beamdeck_agent_sampler:sample(S1),
        [?assertNot(lists:member(pid(P), upserted(F2))) || P <- [Big, Bigger, Small]],
        %% More messages: its memory changed, so its record goes out again.
        ok = fill(Bigger, 100),
        settle([Bigger]),
        {F3, _} = beamdeck_agent_sampler:sample(S2),
        ?assertEqual(500, maps:get(mailbox, record_of(Bigger, F3))),
        ?assertNot(lists:member(pid(Big), upserted(F3))),
        [stop(P) || P <- [Big, Bigger, Small]]
    end).

%% A 2M-element list and four full samples: seconds on a loaded machine.
top_n_by_memory_sent_when_changed_test_() ->
    {timeout, 60, fun top_n_by_memory_sent_when_changed/0}.

top_n_by_memory_sent_when_changed() ->
    beamdeck_test_util:with_env([{top_n, 1}], fun() ->
        Fat = spawn(fun() -> L = lists:seq(1, 2000000), receive stop -> length(L) end end),
        settle([Fat]),
        {F1, S1} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
        ?assert(lists:member(pid(Fat), upserted(F1))),
        {_, S2} = beamdeck_agent_sampler:sample(S1),
        {F3, S3} = beamdeck_agent_sampler:sample(S2),
        %% Unchanged: the server has its record already.
        ?assertNot(lists:member(pid(Fat), upserted(F3))),
        ok = fill(Fat, 1000),
        settle([Fat]),
        {F4, _} = beamdeck_agent_sampler:sample(S3),
        ?assertEqual(1000, maps:get(mailbox, record_of(Fat, F4))),
        stop(Fat)
    end).

dying_processes_do_not_crash_the_sampler_test() ->
    {_, S1} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
    %% Short-lived processes come and go while the sampler reads them.
    Churn = spawn(fun Loop() ->
                          _ = [spawn(fun() -> ok end) || _ <- lists:seq(1, 50)],
                          receive stop -> ok after 0 -> Loop() end
                  end),
    S = lists:foldl(fun(_, Sx) -> element(2, beamdeck_agent_sampler:sample(Sx)) end,
                    S1, lists:seq(1, 20)),
    stop(Churn),
    {Frames, _} = beamdeck_agent_sampler:sample(S),
    ?assert(length(Frames) >= 1).

reset_of_thousands_is_chunked_under_512k_test() ->
    Ps = [holder() || _ <- lists:seq(1, 2500)],
    {Frames, _} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
    ?assert(length(Frames) >= 3),
    [?assert(length(maps:get(upsert, F)) =< 1000) || F <- Frames],
    [?assert(encoded_size(F) < ?FRAME_LIMIT) || F <- Frames],
    ?assertEqual(true, maps:get(reset, hd(Frames))),
    ?assertEqual([false], lists:usort([maps:get(reset, F) || F <- tl(Frames)])),
    [stop(P) || P <- Ps].

%%% Adaptive interval %%%

budget_interpolates_test() ->
    beamdeck_test_util:with_env([{budget_10k, 0.01}, {budget_100k, 0.05}, {min_interval_ms, 1000}], fun() ->
        ?assertEqual(0.01, beamdeck_agent_sampler:budget(500)),
        ?assertEqual(0.01, beamdeck_agent_sampler:budget(10000)),
        ?assertEqual(0.05, beamdeck_agent_sampler:budget(100000)),
        ?assertEqual(0.05, beamdeck_agent_sampler:budget(400000)),
        ?assert(abs(beamdeck_agent_sampler:budget(55000) - 0.03) < 1.0e-9),
        %% 50 ms of work at 1 % of a scheduler: 5 s; cheap work: the floor.
        ?assertEqual(5000, beamdeck_agent_sampler:interval_ms(50000, 10000)),
        ?assertEqual(1000, beamdeck_agent_sampler:interval_ms(500, 10000)),
        ?assertEqual(1000, beamdeck_agent_sampler:interval_ms(50000, 100000)),
        ?assertEqual(2000, beamdeck_agent_sampler:interval_ms(100000, 100000)),
        ?assertEqual(60000, beamdeck_agent_sampler:interval_ms(10000000000, 10000))
    end).

%%% The gen_server, with a stand-in connection %%%

%% The real connection is not started in unit tests: a stand-in module named
%% beamdeck_agent_conn forwards frames to this test and reports the
%% connection state it is told. The original module (if any) is restored.
-define(STUB, "
-module(beamdeck_agent_conn).
-export([send/1, connected/0, stats/0]).
send(F) -> case whereis(bd_sampler_test_sink) of undefined -> ok; P -> P ! {frame, F}, ok end.
connected() -> persistent_term:get(bd_sampler_test_connected, false).
stats() -> #{dropped => 7}.
").

stub_conn() ->
    {ok, Tokens, _} = erl_scan:string(?STUB),
    Forms = split_forms(Tokens, [], []),
    {ok, Mod, Bin} = compile:forms(Forms, []),
    Old = code:which(Mod),
    {module, Mod} = code:load_binary(Mod, "beamdeck_agent_conn_stub.erl", Bin),
    Old.

split_forms([], [], Acc) -> lists:reverse(Acc);
split_forms([{dot, _} = Dot | Rest], Cur, Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Cur])),
    split_forms(Rest, [], [Form | Acc]);
split_forms([T | Rest], Cur, Acc) -> split_forms(Rest, [T | Cur], Acc).

unstub_conn(Old) ->
    _ = code:purge(beamdeck_agent_conn),
    _ = code:delete(beamdeck_agent_conn),
    _ = code:purge(beamdeck_agent_conn),
    case Old of
        Path when is_list(Path) -> {module, _} = code:load_file(beamdeck_agent_conn);
        _ -> ok
    end.

server_test_() ->
    {setup,
     fun() ->
             Old = stub_conn(),
             Env = [{K, application:get_env(beamdeck_agent, K)} || K <- [min_interval_ms, min_reset_interval_ms]],
             %% The floors (1 s each): one tick a second, resyncs 3 s apart.
             application:set_env(beamdeck_agent, min_interval_ms, 1000),
             application:set_env(beamdeck_agent, min_reset_interval_ms, 3000),
             persistent_term:put(bd_sampler_test_connected, false),
             {Old, Env}
     end,
     fun({Old, Env}) ->
             [case V of
                  undefined -> application:unset_env(beamdeck_agent, K);
                  {ok, X} -> application:set_env(beamdeck_agent, K, X)
              end || {K, V} <- Env],
             persistent_term:erase(bd_sampler_test_connected),
             unstub_conn(Old)
     end,
     fun(_) -> [{timeout, 30, fun server_flow/0}] end}.

server_flow() ->
    true = register(bd_sampler_test_sink, self()),
    {ok, Pid} = beamdeck_agent_sampler:start_link(),
    try
        %% Disconnected: nothing is sampled, nothing is sent.
        ?assertEqual([], collect(400)),
        %% Connected: the first frame is a reset, then the tree, then deltas.
        persistent_term:put(bd_sampler_test_connected, true),
        [First | _] = Frames1 = wait_for_reset(3000) ++ collect(1500),
        ?assertMatch(#{type := procs, reset := true}, First),
        Procs1 = [F || #{type := procs} = F <- Frames1],
        ?assertEqual(1, length([F || #{type := tree} = F <- Frames1])),
        [Stats1 | _] = [St || #{type := procs, stats := St} <- Frames1],
        ?assertEqual(7, maps:get(dropped, Stats1)),
        %% Later ticks are deltas; the tree is not resent while unchanged.
        ?assert(length(Procs1) >= 2),
        ?assertEqual([false], lists:usort([maps:get(reset, F) || F <- tl(Procs1)])),
        Seqs = [maps:get(seq, F) || F <- Procs1],
        ?assertEqual(lists:seq(hd(Seqs), hd(Seqs) + length(Seqs) - 1), Seqs),
        %% resync: a reset and a tree again (a tick already under way may
        %% deliver its delta first) — but not sooner than
        %% min_reset_interval_ms after the previous reset.
        ok = beamdeck_agent_sampler:resync(),
        ?assertEqual([], [F || #{type := procs, reset := true} = F <- collect(1000)]),
        Frames2 = wait_for_reset(4000) ++ collect(50),
        ?assertMatch(#{type := procs, reset := true}, hd(Frames2)),
        ?assertEqual(1, length([F || #{type := tree} = F <- Frames2])),
        %% Disconnected again: silence.
        persistent_term:put(bd_sampler_test_connected, false),
        _ = collect(300),
        ?assertEqual([], collect(400))
    after
        unlink(Pid),
        exit(Pid, shutdown),
        unregister(bd_sampler_test_sink)
    end.

%% Drop frames until a reset arrives; the reset and what follows it.
wait_for_reset(Ms) ->
    receive
        {frame, #{type := procs, reset := true} = F} -> [F];
        {frame, _} -> wait_for_reset(Ms)
    after Ms -> error(no_reset_frame)
    end.

%% Every frame that arrives within `Ms'.
collect(Ms) -> collect(erlang:monotonic_time(millisecond) + Ms, []).

collect(Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive {frame, F} -> collect(Deadline, [F | Acc])
    after Left -> lists:reverse(Acc)
    end.
