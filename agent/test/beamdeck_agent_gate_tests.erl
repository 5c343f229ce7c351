-module(beamdeck_agent_gate_tests).

-include_lib("eunit/include/eunit.hrl").

%% The plan digest and the runner's gate check, on plan facts made here.
%% The whole path (plan → gate → refusal on a real release) runs in
%% tests/integration/upgrade-server.test.ts.

facts() ->
    #{node => <<"n@h">>, boot_id => <<"b1">>, step => install,
      choices => [{<<"m1">>, brutal_purge, brutal_purge}, {<<"m2">>, soft_purge, brutal_purge}],
      killed => #{install => [<<"<0.10.0>">>, <<"<0.11.0>">>], make_permanent => [<<"<0.12.0>">>]},
      blocked => [], error_ids => []}.

gate(Extra) -> maps:merge(#{plan => null, max_kills => null, findings => []}, Extra).

digest_is_hex_sha256_test() ->
    D = beamdeck_agent_gate:digest(facts()),
    ?assertEqual(64, byte_size(D)),
    ?assertMatch({match, _}, re:run(D, "^[0-9a-f]{64}$")).

digest_ignores_order_test() ->
    F = facts(),
    Shuffled = F#{choices => lists:reverse(maps:get(choices, F)),
                  killed => #{install => [<<"<0.11.0>">>, <<"<0.10.0>">>, <<"<0.11.0>">>],
                              make_permanent => [<<"<0.12.0>">>]}},
    ?assertEqual(beamdeck_agent_gate:digest(F), beamdeck_agent_gate:digest(Shuffled)).

digest_covers_every_fact_test() ->
    F = facts(),
    D = beamdeck_agent_gate:digest(F),
    Variants = [F#{node => <<"m@h">>}, F#{boot_id => <<"b2">>}, F#{step => rollback},
                F#{choices => [{<<"m1">>, soft_purge, brutal_purge}, {<<"m2">>, soft_purge, brutal_purge}]},
                F#{killed => #{install => [<<"<0.10.0>">>], make_permanent => [<<"<0.12.0>">>]}},
                %% the same pid killed at the other step is another plan
                F#{killed => #{install => [<<"<0.10.0>">>, <<"<0.11.0>">>, <<"<0.12.0>">>],
                               make_permanent => []}},
                F#{blocked => [<<"<0.13.0>">>]}, F#{error_ids => [<<"emulator_restart:-">>]}],
    Digests = [beamdeck_agent_gate:digest(V) || V <- Variants],
    ?assertNot(lists:member(D, Digests)),
    ?assertEqual(length(Digests), length(lists:usort(Digests))).

same_digest_passes_test() ->
    F = facts(),
    ?assertEqual(ok, beamdeck_agent_gate:check(gate(#{plan => beamdeck_agent_gate:digest(F)}), F, none)).

no_gate_refuses_kills_test() ->
    ?assertMatch({error, plan_changed, _, #{unacceptedKillCount := 3}},
                 beamdeck_agent_gate:check(gate(#{}), facts(), none)),
    Safe = (facts())#{killed => #{install => [], make_permanent => []}},
    ?assertEqual(ok, beamdeck_agent_gate:check(gate(#{}), Safe, none)).

fewer_kills_pass_test() ->
    Reviewed = facts(),
    Now = Reviewed#{killed => #{install => [<<"<0.10.0>">>], make_permanent => []}},
    ?assertEqual(ok, beamdeck_agent_gate:check(gate(#{plan => beamdeck_agent_gate:digest(Reviewed)}),
                                               Now, Reviewed)).

a_kill_outside_the_reviewed_set_is_refused_test() ->
    Reviewed = facts(),
    %% As many kills as reviewed, but one of them another process: a count would pass.
    Now = Reviewed#{killed => #{install => [<<"<0.10.0>">>, <<"<0.99.0>">>],
                                make_permanent => [<<"<0.12.0>">>]}},
    {error, plan_changed, Msg, Detail} =
        beamdeck_agent_gate:check(gate(#{plan => beamdeck_agent_gate:digest(Reviewed)}), Now, Reviewed),
    ?assertMatch(#{unacceptedKills := [<<"<0.99.0>">>], unacceptedKillCount := 1, kills := 3}, Detail),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"<0.99.0>">>)).

an_unknown_reviewed_plan_is_refused_when_it_kills_test() ->
    ?assertMatch({error, plan_changed, _, #{reviewedKnown := false}},
                 beamdeck_agent_gate:check(gate(#{plan => binary:copy(<<"a">>, 64)}), facts(), none)).

max_kills_bounds_the_count_test() ->
    F = facts(),
    ?assertEqual(ok, beamdeck_agent_gate:check(gate(#{max_kills => 3}), F, none)),
    ?assertMatch({error, plan_changed, _, #{kills := 3, maxKills := 2}},
                 beamdeck_agent_gate:check(gate(#{max_kills => 2}), F, none)).

max_kills_does_not_accept_error_findings_test() ->
    F = (facts())#{error_ids => [<<"emulator_restart:-:restart_new_emulator">>]},
    ?assertMatch({error, plan_changed, _, #{unacceptedFindings := [<<"emulator_restart:-:restart_new_emulator">>]}},
                 beamdeck_agent_gate:check(gate(#{max_kills => 10}), F, none)),
    ?assertEqual(ok, beamdeck_agent_gate:check(
                       gate(#{max_kills => 10, findings => [<<"emulator_restart:-:restart_new_emulator">>]}),
                       F, none)).

a_new_error_finding_is_refused_under_the_reviewed_digest_test() ->
    Reviewed = facts(),
    Now = Reviewed#{error_ids => [<<"code_change_crash:m1">>]},
    ?assertMatch({error, plan_changed, _, #{unacceptedFindings := [<<"code_change_crash:m1">>]}},
                 beamdeck_agent_gate:check(gate(#{plan => beamdeck_agent_gate:digest(Reviewed)}),
                                           Now, Reviewed)).

parse_test() ->
    ?assertEqual({ok, gate(#{})}, beamdeck_agent_gate:parse(#{})),
    D = binary:copy(<<"0">>, 64),
    ?assertEqual({ok, gate(#{plan => D, max_kills => 2, findings => [<<"x:y">>]})},
                 beamdeck_agent_gate:parse(#{<<"gate">> => #{<<"acceptPlan">> => D, <<"maxKills">> => 2,
                                                             <<"acceptFindings">> => [<<"x:y">>]}})),
    [?assertMatch({error, bad_request, _}, beamdeck_agent_gate:parse(#{<<"gate">> => G}))
     || G <- [#{<<"acceptPlan">> => <<"short">>}, #{<<"maxKills">> => -1},
              #{<<"maxKills">> => <<"3">>}, #{<<"acceptFindings">> => <<"x">>}, 7]].

findings_schema_test() ->
    F = beamdeck_agent_findings:new(emulator_restart, null, <<"restart_new_emulator">>, [self()],
                                    <<"m">>, <<"f">>),
    ?assertMatch(#{id := <<"emulator_restart:-:restart_new_emulator">>, severity := error,
                   module := null, count := 1, pids := [_]}, F),
    Many = [spawn(fun() -> ok end) || _ <- lists:seq(1, 150)],
    G = beamdeck_agent_findings:new(fun_in_ets, lists, Many, <<"m">>, <<"f">>),
    ?assertMatch(#{id := <<"fun_in_ets:lists">>, severity := warning, count := 150}, G),
    ?assertEqual(100, length(maps:get(pids, G))),
    ?assertEqual([<<"emulator_restart:-:restart_new_emulator">>],
                 beamdeck_agent_findings:error_ids([F, G])).
