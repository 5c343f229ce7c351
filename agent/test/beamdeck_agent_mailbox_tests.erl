-module(beamdeck_agent_mailbox_tests).
-include_lib("eunit/include/eunit.hrl").

%% A process whose mailbox holds what an unawaited Task.async leaves:
%% `{Ref, Result}' and `{'DOWN', Ref, process, Pid, normal}' per task.
sink() -> spawn(fun() -> receive stop -> ok end end).

task_leak(Sink, N) ->
    [begin
         Ref = make_ref(),
         Sink ! {Ref, {ok, I}},
         Sink ! {'DOWN', Ref, process, self(), normal}
     end || I <- lists:seq(1, N)].

hints_name_task_async_pattern_test() ->
    Ref = make_ref(),
    Hints = beamdeck_agent_mailbox:hints([{Ref, ok}, {'DOWN', Ref, process, self(), normal},
                                          {make_ref(), late}, {'DOWN', make_ref(), process, self(), x},
                                          hello]),
    ?assertEqual([<<"task_async_unawaited">>, <<"late_replies">>, <<"unhandled_down">>],
                 [maps:get(id, H) || H <- Hints]),
    ?assertEqual([1, 1, 1], [maps:get(count, H) || H <- Hints]),
    ?assertEqual([], beamdeck_agent_mailbox:hints([hello, {a, b}])).

preview_hidden_keeps_hints_test() ->
    S = sink(),
    task_leak(S, 3),
    P = beamdeck_agent_mailbox:preview(S, 6, false),
    ?assertMatch(#{status := <<"hidden">>, messages := []}, P),
    [H] = maps:get(hints, P),
    ?assertMatch(#{id := <<"task_async_unawaited">>, count := 3}, H),
    S ! stop.

preview_shown_first_messages_capped_test() ->
    S = sink(),
    [S ! {big, binary:copy(<<"x">>, 2000), I} || I <- lists:seq(1, 15)],
    P = beamdeck_agent_mailbox:preview(S, 15, true),
    ?assertEqual(<<"shown">>, maps:get(status, P)),
    Ms = maps:get(messages, P),
    ?assertEqual(10, length(Ms)),
    [?assert(maps:get(truncated, M)) || M <- Ms],
    [?assert(byte_size(maps:get(text, M)) =< 600) || M <- Ms],
    S ! stop.

preview_guard_test() ->
    %% At the guard nothing is read, whatever the setting.
    ?assertMatch(#{status := <<"too_many">>, messages := [], hints := []},
                 beamdeck_agent_mailbox:preview(self(), 10000, true)),
    ?assertMatch(#{status := <<"empty">>}, beamdeck_agent_mailbox:preview(self(), 0, true)).
