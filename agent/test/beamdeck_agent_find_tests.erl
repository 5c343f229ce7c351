-module(beamdeck_agent_find_tests).
-include_lib("eunit/include/eunit.hrl").

%% A process blocked in a receive inside a module of ours, started from a
%% fun of another module: found by the module on its stack, labelled by it.
-define(SRC, "-module(bd_find_mod).\n-export([wait/0]).\n"
             "wait() -> receive stop -> ok end, done.\n").

load() ->
    {ok, Toks, _} = erl_scan:string(?SRC),
    Forms = split(Toks, [], []),
    {ok, M, Bin} = compile:forms([F || {ok, F} <- [erl_parse:parse_form(T) || T <- Forms]]),
    {module, M} = code:load_binary(M, "bd_find_mod.erl", Bin),
    M.

split([], [], Acc) -> lists:reverse(Acc);
split([{dot, _} = D | Rest], Cur, Acc) -> split(Rest, [], [lists:reverse([D | Cur]) | Acc]);
split([T | Rest], Cur, Acc) -> split(Rest, [T | Cur], Acc).

find_by_stack_module_test() ->
    load(),
    P = spawn(fun() -> bd_find_mod:wait() end),
    beamdeck_test_util:wait_waiting([P]),   % bd_find_mod on its stack only once it runs
    {ok, R} = beamdeck_agent_find:find(#{<<"module">> => <<"BD_FIND">>}),
    Pid = beamdeck_agent_terms:pid(P),
    ?assertMatch([#{pid := Pid, modules := [<<"bd_find_mod">>]}], maps:get(matches, R)),
    ?assertEqual(false, maps:get(partial, R)),
    ?assertEqual(maps:get(total, R), maps:get(scanned, R)),
    %% Started from a fun of this test module: labelled by the stack's module.
    {initial_call, IC} = erlang:process_info(P, initial_call),
    ?assertEqual(<<"bd_find_mod">>, beamdeck_agent_find:label(P, IC)),
    ?assertEqual(null, beamdeck_agent_find:label(P, {bd_find_mod, wait, 0})),
    P ! stop,
    %% proc_lib records the fun's own name, as Elixir's Task does.
    Q = proc_lib:spawn(fun() -> bd_find_mod:wait() end),
    beamdeck_test_util:wait_waiting([Q]),
    {M, F, 0} = beamdeck_agent_procinfo:initial_call(Q),
    ?assertMatch(<<"-", _/binary>>, atom_to_binary(F)),
    ?assertEqual(<<"bd_find_mod">>, beamdeck_agent_find:label(Q, {M, F, 0})),
    {ok, Rec} = beamdeck_agent_procinfo:record(Q),
    ?assertEqual(<<"bd_find_mod">>, maps:get(label, Rec)),
    Q ! stop.

find_by_callback_module_test() ->
    {ok, P} = gen_server:start(beamdeck_agent_detail_tests, state, []),
    {ok, R} = beamdeck_agent_find:find(#{<<"module">> => <<"agent_detail_tests">>}),
    Pid = beamdeck_agent_terms:pid(P),
    ?assertMatch([#{pid := Pid}], [M || M = #{pid := X} <- maps:get(matches, R), X =:= Pid]),
    gen_server:stop(P).

budget_says_how_far_test() ->
    {ok, R} = beamdeck_agent_find:find(#{<<"module">> => <<"zz_none">>, <<"limit">> => 5}),
    ?assertEqual([], maps:get(matches, R)),
    ?assert(maps:get(scanned, R) =< maps:get(total, R)),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_find:find(#{<<"module">> => <<>>})),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_find:find(#{})).
