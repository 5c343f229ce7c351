-module(beamdeck_agent_fallback_tests).

-include_lib("eunit/include/eunit.hrl").

-define(REC, beamdeck_agent_fallback_record).
-define(OUT, beamdeck_agent_fallback_outcome).

tmp_dir() ->
    Dir = filename:join(["/tmp", "bd_fallback_tests_" ++ os:getpid(),
                         integer_to_list(erlang:unique_integer([positive]))]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

record(Deadline) ->
    #{vsn => <<"0.1.1">>, from => <<"0.1.0">>, deadline => Deadline, durationMs => 5000,
      commandId => <<"c-1">>, armedAt => Deadline - 5000, rollbackDigest => null,
      maxKills => null, acceptFindings => []}.

rels(Statuses) -> [#{name => "rel_test", vsn => V, status => S} || {V, S} <- Statuses].

%%% THE RECORD FILE %%%

record_file_test_() ->
    {setup, fun tmp_dir/0, fun(Dir) -> os:cmd("rm -rf " ++ Dir) end,
     fun(Dir) ->
             [?_test(begin
                         ?assertEqual(none, ?REC:read(Dir)),
                         R = (record(1000))#{rollbackDigest => <<"abc">>, maxKills => 3,
                                             acceptFindings => [<<"nif_module:m">>]},
                         ok = ?REC:write(Dir, R),
                         %% Durable before write/2 returns: a fresh read sees it.
                         ?assertEqual({ok, R}, ?REC:read(Dir)),
                         ok = ?REC:delete(Dir),
                         ?assertEqual(none, ?REC:read(Dir)),
                         %% Deleting twice is fine.
                         ?assertEqual(ok, ?REC:delete(Dir))
                     end),
              ?_test(begin
                         ok = file:write_file(?REC:file(Dir), <<"not a term">>),
                         ?assertEqual(none, ?REC:read(Dir)),
                         ?assert(filelib:is_regular(?REC:file(Dir) ++ ".bad")),
                         ?assertNot(filelib:is_regular(?REC:file(Dir)))
                     end),
              ?_test(begin
                         %% The outcome journal likewise: set aside, read as empty;
                         %% its last entry removed, the file goes.
                         ok = file:write_file(?OUT:file(Dir), <<"not a term">>),
                         ?assertEqual([], ?OUT:read(Dir)),
                         ?assert(filelib:is_regular(?OUT:file(Dir) ++ ".bad")),
                         ok = ?OUT:add(Dir, <<"c-1">>, #{kind => <<"fallback">>}),
                         ?assertEqual([{<<"c-1">>, #{kind => <<"fallback">>}}], ?OUT:read(Dir)),
                         ok = ?OUT:remove(Dir, <<"c-1">>),
                         ?assertNot(filelib:is_regular(?OUT:file(Dir)))
                     end),
              ?_test(begin
                         %% A directory where the file should be: the write
                         %% fails and names the file (the install is refused).
                         Sub = filename:join(Dir, "blocked"),
                         ok = filelib:ensure_dir(filename:join(?REC:file(Sub), "x")),
                         {error, Why} = ?REC:write(Sub, record(1)),
                         ?assertMatch({0, _}, binary:match(Why, list_to_binary(?REC:file(Sub))))
                     end)]
     end}.

%%% THE DECISION %%%

decide_test_() ->
    R = record(10000),
    [%% Installed and running, before the deadline: wait the time left.
     ?_assertEqual({wait, 4000}, ?REC:decide(R, rels([{"0.1.1", current}, {"0.1.0", permanent}]), 6000)),
     %% At or after the deadline: roll back.
     ?_assertEqual(fire, ?REC:decide(R, rels([{"0.1.1", current}, {"0.1.0", permanent}]), 10000)),
     ?_assertEqual(fire, ?REC:decide(R, rels([{"0.1.1", current}, {"0.1.0", permanent}]), 99999)),
     %% Made permanent (elsewhere, or before the record was cleared).
     ?_assertEqual({clear, made_permanent},
                   ?REC:decide(R, rels([{"0.1.1", permanent}, {"0.1.0", old}]), 99999)),
     %% The node restarted: release_handler boots the permanent release and
     %% reads the installed one as unpacked. Expired or not: nothing to undo.
     ?_assertEqual({clear, {not_running, unpacked, "0.1.0", "0.1.0"}},
                   ?REC:decide(R, rels([{"0.1.1", unpacked}, {"0.1.0", permanent}]), 99999)),
     ?_assertEqual({clear, {not_running, unpacked, "0.1.0", "0.1.0"}},
                   ?REC:decide(R, rels([{"0.1.1", unpacked}, {"0.1.0", permanent}]), 1)),
     %% Another release runs now (say 0.1.2 was installed over it).
     ?_assertEqual({clear, {not_running, old, "0.1.2", "0.1.0"}},
                   ?REC:decide(R, rels([{"0.1.2", current}, {"0.1.1", old}, {"0.1.0", permanent}]), 1)),
     ?_assertEqual({clear, {not_running, absent, "0.1.0", "0.1.0"}},
                   ?REC:decide(R, rels([{"0.1.0", permanent}]), 1))].

%%% THE TIMER SERVER %%%

%% A fallback server with the releases, the rollback submission and the
%% event sink replaced: the test process sees submissions and events.
start(Dir, Rels) ->
    Me = self(),
    ets_rels(Rels),
    {ok, Pid} = beamdeck_agent_fallback:start_link(
                  #{state_dir => Dir,
                    releases => fun() -> {ok, persistent_term:get({?MODULE, rels})} end,
                    submit => fun(Cmd) -> Me ! {submitted, Cmd}, {ok, #{accepted => true}} end,
                    notify => fun(E) -> Me ! {event, E}, {ok, erlang:unique_integer([positive])} end,
                    delivery => fun(_Seq) -> persistent_term:get({?MODULE, delivery}, acked) end}),
    Pid.

ets_rels(Rels) -> persistent_term:put({?MODULE, rels}, Rels).

stop(Pid) ->
    unlink(Pid),
    exit(Pid, shutdown),
    wait_down(Pid).

wait_down(Pid) ->
    Ref = monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok after 5000 -> error(not_stopped) end.

now_ms() -> os:system_time(millisecond).

%% The rollback the fallback submits, not before `Deadline': judged by the
%% clock when it comes, so a slow start on a loaded machine cannot make a
%% right one look early (a window after the start did).
await_fired(Deadline) ->
    receive
        {submitted, C} ->
            ?assert(now_ms() >= Deadline),
            C
    after max(0, Deadline - now_ms()) + 3000 -> error(not_fired)
    end.

%% A case that failed leaves its fallback process running: the next must not find it.
cleanup(Dir) ->
    case whereis(beamdeck_agent_fallback) of
        undefined -> ok;
        Pid -> stop(Pid)
    end,
    persistent_term:erase({?MODULE, rels}),
    persistent_term:erase({?MODULE, delivery}),
    os:cmd("rm -rf " ++ Dir).

server_test_() ->
    {foreach, fun tmp_dir/0, fun cleanup/1,
     [fun(Dir) -> {timeout, 30, I(Dir)} end || I <- server_cases()]}.

%% 30 s each, not EUnit's 5 s: their deadlines and waits add up to seconds,
%% more at load 30; each wait has its own bound.
server_cases() ->
    [fun(Dir) -> {"fires at the deadline with the armed gate", ?_test(fires(Dir))} end,
     fun(Dir) -> {"make_permanent cancels it", ?_test(permanent_cancels(Dir))} end,
     fun(Dir) -> {"a restart re-arms a future deadline", ?_test(rearms(Dir))} end,
     fun(Dir) -> {"a restart past the deadline rolls back at once", ?_test(expired_at_start(Dir))} end,
     fun(Dir) -> {"a node restarted into the permanent release clears it", ?_test(restarted(Dir))} end,
     fun(Dir) -> {"a failed install clears it silently", ?_test(install_failed(Dir))} end,
     fun(Dir) -> {"the outcome stays journaled until acked, sent again when lost", ?_test(journaled_until_acked(Dir))} end,
     fun(Dir) -> {"a restart sends a journaled outcome again, once", ?_test(replayed_at_start(Dir))} end].

running() -> rels([{"0.1.1", current}, {"0.1.0", permanent}]).

fires(Dir) ->
    Pid = start(Dir, running()),
    %% Far enough for the steps before it to be done first, even at load.
    Deadline = now_ms() + 2000,
    R = record(Deadline),
    ok = beamdeck_agent_fallback:prepare(R),
    ?assertEqual({ok, R}, ?REC:read(Dir)),
    Json = beamdeck_agent_fallback:armed(<<"c-1">>, #{rollbackDigest => <<"d1">>, maxKills => 2,
                                                     acceptFindings => [<<"f1">>]}),
    ?assertMatch(#{rollbackDigest := <<"d1">>, maxKills := 2, from := <<"0.1.0">>}, Json),
    Cmd = await_fired(Deadline),
    ?assertMatch(#{id := <<"fallback-c-1">>, action := rollback, vsn := <<"0.1.0">>,
                   gate := #{plan := null, max_kills := 2, findings := [<<"f1">>]}}, Cmd),
    %% The record stays until the rollback's outcome is known.
    ?assertMatch({ok, _}, ?REC:read(Dir)),
    ets_rels(rels([{"0.1.0", permanent}, {"0.1.1", old}])),
    beamdeck_agent_fallback:command_done(<<"fallback-c-1">>, rollback, true),
    Ev = receive {event, E} -> E after 3000 -> error(no_event) end,
    ?assertMatch(#{kind := <<"fallback">>, context := <<"rolled_back">>,
                   rollbackCommandId := <<"fallback-c-1">>,
                   fallback := #{vsn := <<"0.1.1">>, rollbackDigest := <<"d1">>}}, Ev),
    ?assertEqual(null, beamdeck_agent_fallback:status()),
    ?assertEqual(none, ?REC:read(Dir)),
    stop(Pid).

permanent_cancels(Dir) ->
    Pid = start(Dir, running()),
    %% Far enough that the cancel surely arrives first, even on a loaded machine.
    Deadline = now_ms() + 3000,
    ok = beamdeck_agent_fallback:prepare(record(Deadline)),
    ?assertMatch(#{vsn := <<"0.1.1">>}, beamdeck_agent_fallback:status()),
    beamdeck_agent_fallback:command_done(<<"c-2">>, make_permanent, true),
    Ev = receive {event, E} -> E after 3000 -> error(no_event) end,
    ?assertMatch(#{context := <<"cleared">>}, Ev),
    ?assertEqual(none, ?REC:read(Dir)),
    %% The deadline passes: no rollback.
    receive {submitted, C} -> error({fired, C}) after max(0, Deadline - now_ms()) + 300 -> ok end,
    stop(Pid).

rearms(Dir) ->
    Deadline = now_ms() + 1000,
    ok = ?REC:write(Dir, record(Deadline)),
    Pid = start(Dir, running()),
    ?assertMatch(#{vsn := <<"0.1.1">>}, beamdeck_agent_fallback:status()),
    _ = await_fired(Deadline),
    stop(Pid).

expired_at_start(Dir) ->
    ok = ?REC:write(Dir, record(now_ms() - 1000)),
    Pid = start(Dir, running()),
    receive {submitted, #{action := rollback}} -> ok after 1000 -> error(not_fired) end,
    %% A failed rollback is said, and the record goes (it would fail again).
    beamdeck_agent_fallback:command_done(<<"fallback-c-1">>, rollback, false),
    Ev = receive {event, E} -> E after 3000 -> error(no_event) end,
    ?assertMatch(#{context := <<"failed">>}, Ev),
    ?assertEqual(none, ?REC:read(Dir)),
    stop(Pid).

restarted(Dir) ->
    ok = ?REC:write(Dir, record(now_ms() - 1000)),
    Pid = start(Dir, rels([{"0.1.1", unpacked}, {"0.1.0", permanent}])),
    Ev = receive {event, E} -> E after 3000 -> error(no_event) end,
    ?assertMatch(#{context := <<"node_restarted">>}, Ev),
    #{reason := #{text := Text}} = Ev,
    ?assertEqual(<<"fallback: node restarted into permanent release 0.1.0; 0.1.1 is not running "
                   "(unpacked), nothing to roll back">>, Text),
    ?assertEqual(none, ?REC:read(Dir)),
    receive {submitted, C} -> error({fired, C}) after 200 -> ok end,
    stop(Pid).

install_failed(Dir) ->
    Pid = start(Dir, running()),
    Deadline = now_ms() + 3000,
    ok = beamdeck_agent_fallback:prepare(record(Deadline)),
    beamdeck_agent_fallback:command_done(<<"c-1">>, install, false),
    ?assertEqual(null, beamdeck_agent_fallback:status()),
    ?assertEqual(none, ?REC:read(Dir)),
    receive Msg -> error({unexpected, Msg}) after max(0, Deadline - now_ms()) + 300 -> ok end,
    stop(Pid).

journaled_until_acked(Dir) ->
    persistent_term:put({?MODULE, delivery}, pending),
    ok = ?REC:write(Dir, record(now_ms() - 1000)),
    Pid = start(Dir, rels([{"0.1.1", unpacked}, {"0.1.0", permanent}])),
    Ev = receive {event, E} -> E after 3000 -> error(no_event) end,
    %% The record is gone, the event is on disk until the server acks it.
    ?assertEqual(none, ?REC:read(Dir)),
    ?assertEqual([{<<"c-1">>, Ev}], ?OUT:read(Dir)),
    receive {event, Again} -> error({resent_while_pending, Again}) after 1500 -> ok end,
    %% The buffer dropped it: the same event (same `at') goes out again.
    persistent_term:put({?MODULE, delivery}, lost),
    ?assertEqual(Ev, receive {event, E2} -> E2 after 3000 -> error(not_resent) end),
    persistent_term:put({?MODULE, delivery}, acked),
    wait_until(fun() -> ?OUT:read(Dir) =:= [] end),
    ?assertNot(filelib:is_regular(?OUT:file(Dir))),
    stop(Pid).

replayed_at_start(Dir) ->
    %% A node restart after the rollback, before the server acked its event:
    %% both the record (not yet deleted) and the outcome are on disk.
    Ev = #{kind => <<"fallback">>, context => <<"rolled_back">>, at => 1234,
           reason => #{text => <<"rolled back">>, truncated => false},
           fallback => ?REC:json(record(1)), rollbackCommandId => <<"fallback-c-1">>},
    ok = ?OUT:add(Dir, <<"c-1">>, Ev),
    ok = ?REC:write(Dir, record(now_ms() - 1000)),
    Pid = start(Dir, running()),
    ?assertEqual(Ev, receive {event, E} -> E after 3000 -> error(no_event) end),
    %% Decided already: no second outcome, no rollback, the record goes.
    receive Msg -> error({unexpected, Msg}) after 1500 -> ok end,
    ?assertEqual(none, ?REC:read(Dir)),
    ?assertEqual([], ?OUT:read(Dir)),
    stop(Pid).

wait_until(F) -> wait_until(F, 50).
wait_until(F, 0) -> ?assert(F());
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(100), wait_until(F, N - 1)
    end.
