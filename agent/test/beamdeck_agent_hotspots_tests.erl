-module(beamdeck_agent_hotspots_tests).

-include_lib("eunit/include/eunit.hrl").

%%% Helpers %%%

idle(N) ->
    Ps = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    Ps.

stop_all(Ps) -> [exit(P, kill) || P <- Ps], ok.

pid(P) -> list_to_binary(pid_to_list(P)).

upserted(Frames) -> [maps:get(pid, R) || F <- Frames, R <- maps:get(upsert, F)].
%% Run `Fun' with the system monitor as it was before, whatever happens.
with_monitor_restored(Fun) ->
    Before = erlang:system_monitor(),
    try Fun()
    after
        _ = erlang:system_monitor(Before)
    end.

%%% The walk %%%

scan_counts_every_process_and_keeps_nonzero_mailboxes_test() ->
    [Full | _] = Ps = idle(50),
    [Full ! {m, I} || I <- lists:seq(1, 7)],
    try
        #{nonzero := NZ, total := Total, mem := Mem} = beamdeck_agent_hotspots:scan(0, 1000000, 3),
        ?assertEqual(7, maps:get(Full, NZ)),
        ?assertNot(lists:any(fun(N) -> N =:= 0 end, maps:values(NZ))),
        ?assert(Total >= 50),
        ?assert(abs(Total - erlang:system_info(process_count)) < 10),
        ?assertEqual(3, length(Mem))
    after
        stop_all(Ps)
    end.

scan_reads_memory_only_in_its_slice_test() ->
    #{mem := Mem} = beamdeck_agent_hotspots:scan(1000000, 1000, 5),
    ?assertEqual([], Mem),
    #{mem := Mem2} = beamdeck_agent_hotspots:scan(0, 0, 5),
    ?assertEqual([], Mem2).

top_is_largest_first_test() ->
    A = self(),
    B = spawn(fun() -> ok end),
    C = spawn(fun() -> ok end),
    ?assertEqual([B, C], beamdeck_agent_hotspots:top([{1, A}, {9, B}, {5, C}], 2)),
    ?assertEqual([], beamdeck_agent_hotspots:top([{1, A}], 0)),
    ?assertEqual([B, A], beamdeck_agent_hotspots:top_map(fun(V) -> V end, #{A => 3, B => 4, C => 1}, 2)).

%%% The sampler in partial mode %%%

partial_mode_sends_hot_spots_only_test_() ->
    {timeout, 60, fun partial_mode/0}.

partial_mode() ->
    beamdeck_test_util:with_env([{full_table_max, 1000}, {top_n, 5}], fun() ->
        Ps = idle(1200),
        [Stuffed | _] = Ps,
        [Stuffed ! {m, I} || I <- lists:seq(1, 600)],
        try
            {Frames, S1} = beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new()),
            [First | _] = Frames,
            ?assertEqual(true, maps:get(reset, First)),
            ?assert(lists:all(fun(F) -> maps:get(partial, F) =:= true end, Frames)),
            ?assert(maps:get(total, First) >= 1200),
            Pids = upserted(Frames),
            %% top-N by mailbox and by memory: at most 2 * 5, not 1200.
            ?assert(length(Pids) =< 10),
            ?assert(lists:member(pid(Stuffed), Pids)),
            [Rec] = [R || F <- Frames, R <- maps:get(upsert, F), maps:get(pid, R) =:= pid(Stuffed)],
            ?assertEqual(600, maps:get(mailbox, Rec)),
            %% The stuffed process dies: the server is told to drop it.
            beamdeck_test_util:kill_wait([Stuffed]),
            {Frames2, _} = beamdeck_agent_sampler:sample(S1),
            ?assertEqual(false, maps:get(reset, hd(Frames2))),
            ?assert(lists:member(pid(Stuffed), [P || F <- Frames2, P <- maps:get(remove, F)]))
        after
            stop_all(Ps)
        end
    end).

leaving_partial_mode_resets_the_full_table_test_() ->
    {timeout, 60, fun() ->
        Ps = idle(1200),
        {_, S1} = beamdeck_test_util:with_env([{full_table_max, 1000}], fun() ->
                      beamdeck_agent_sampler:sample(beamdeck_agent_sampler:new())
                  end),
        beamdeck_test_util:kill_wait(Ps),   % all gone: 50 ms did not do at load
        {Frames, _} = beamdeck_test_util:with_env([{full_table_max, 1000}], fun() -> beamdeck_agent_sampler:sample(S1) end),
        [First | _] = Frames,
        ?assertEqual(true, maps:get(reset, First)),
        ?assertNot(maps:is_key(partial, First)),
        ?assertEqual(maps:get(total, First), length(upserted(Frames)))
    end}.

%%% The system monitor: taken only when free %%%

host_monitor_is_left_alone_test() ->
    with_monitor_restored(fun() ->
        Host = spawn(fun() -> receive stop -> ok end end),
        _ = erlang:system_monitor(Host, [busy_port, {long_gc, 500}]),
        Set = erlang:system_monitor(),
        ?assertEqual(host, beamdeck_agent_sysmon:take(self(), true)),
        ?assertEqual(Set, erlang:system_monitor()),
        ?assertEqual({Host, [busy_port, {long_gc, 500}]}, sort_opts(erlang:system_monitor())),
        exit(Host, kill)
    end).

free_monitor_is_taken_where_supported_test() ->
    with_monitor_restored(fun() ->
        _ = erlang:system_monitor(undefined),
        case beamdeck_agent_sysmon:take(self(), true) of
            owned ->
                ?assert(list_to_integer(erlang:system_info(otp_release)) >= 27),
                {Self, Opts} = erlang:system_monitor(),
                ?assertEqual(self(), Self),
                ?assertMatch([{long_message_queue, {_, _}}], Opts);
            unsupported ->
                ?assert(list_to_integer(erlang:system_info(otp_release)) < 27),
                ?assertEqual(undefined, erlang:system_monitor())
        end
    end).

switched_off_takes_nothing_test() ->
    with_monitor_restored(fun() ->
        _ = erlang:system_monitor(undefined),
        ?assertEqual(off, beamdeck_agent_sysmon:take(self(), false)),
        ?assertEqual(undefined, erlang:system_monitor())
    end).

sort_opts({Pid, Opts}) -> {Pid, lists:sort(Opts)}.

%% End to end on one node: a mailbox past 500 reaches the sampler as
%% `hot' (OTP 27+); before 27 the monitor is not taken at all.
hot_mailbox_reaches_the_sampler_test_() ->
    {timeout, 30, fun() ->
        with_monitor_restored(fun() ->
            _ = erlang:system_monitor(undefined),
            Self = self(),
            Fake = spawn(fun() -> receive {'$gen_cast', {hot, P}} -> Self ! {hot, P} end end),
            register(beamdeck_agent_sampler, Fake),
            {ok, Mon} = beamdeck_agent_sysmon:start_link(),
            Stuffed = spawn(fun() -> receive stop -> ok end end),
            try
                Mode = beamdeck_agent_sysmon:mode(),
                [Stuffed ! {m, I} || I <- lists:seq(1, 600)],
                case list_to_integer(erlang:system_info(otp_release)) >= 27 of
                    true ->
                        ?assertEqual(owned, Mode),
                        ?assertEqual(Stuffed, receive {hot, P} -> P after 10000 -> timeout end);
                    false ->
                        ?assertEqual(unsupported, Mode),
                        ?assertEqual(undefined, erlang:system_monitor())
                end
            after
                unlink(Mon),
                gen_server:stop(Mon),
                exit(Fake, kill),
                exit(Stuffed, kill)
            end,
            %% Given back on exit.
            ?assertEqual(undefined, erlang:system_monitor())
        end)
    end}.

%%% Busy time (the sampler's budget in the bench's terms) %%%

busy_time_counts_work_on_any_scheduler_test() ->
    Old = erlang:system_flag(scheduler_wall_time, true),
    try
        B0 = beamdeck_agent_busy:sample(),
        T0 = erlang:monotonic_time(microsecond),
        spin(erlang:monotonic_time(millisecond) + 100),
        Busy = beamdeck_agent_busy:busy_us(B0, erlang:monotonic_time(microsecond) - T0),
        %% At least part of the 100 ms spin was seen (a loaded host may
        %% deschedule the emulator); never more schedulers than exist.
        ?assert(Busy >= 20000),
        ?assert(Busy =< (erlang:monotonic_time(microsecond) - T0) * erlang:system_info(schedulers))
    after
        erlang:system_flag(scheduler_wall_time, Old)
    end.

busy_time_unknown_without_the_flag_test() ->
    ?assertEqual(0, beamdeck_agent_busy:busy_us(undefined, 1000000)).

%% The schedulers are read on the first stretch and every 5th after; in
%% between, the last measured busy/wall ratio scales the stretch's wall time.
busy_time_read_every_fifth_stretch_test() ->
    Old = erlang:system_flag(scheduler_wall_time, true),
    try
        {Started, M0} = beamdeck_agent_busy:start(beamdeck_agent_busy:new()),
        ?assertMatch({sample, [_ | _]}, Started),
        T0 = erlang:monotonic_time(microsecond),
        spin(erlang:monotonic_time(millisecond) + 50),
        Wall = erlang:monotonic_time(microsecond) - T0,
        {Busy, M1} = beamdeck_agent_busy:finish(Started, Wall, M0),
        ?assert(Busy >= 10000),
        %% The next four are estimates: the measured ratio, twice the wall
        %% time, twice the busy time (within rounding).
        M5 = lists:foldl(
               fun(_, M) ->
                       {S, Mx} = beamdeck_agent_busy:start(M),
                       ?assertEqual(estimate, S),
                       {B, My} = beamdeck_agent_busy:finish(S, 2 * Wall, Mx),
                       ?assert(abs(B - 2 * Busy) =< 2),
                       My
               end, M1, lists:seq(1, 4)),
        ?assertMatch({{sample, [_ | _]}, _}, beamdeck_agent_busy:start(M5))
    after
        erlang:system_flag(scheduler_wall_time, Old)
    end.

spin(Until) ->
    case erlang:monotonic_time(millisecond) >= Until of
        true -> ok;
        false -> spin(Until)
    end.
