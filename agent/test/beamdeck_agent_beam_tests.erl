-module(beamdeck_agent_beam_tests).

-include_lib("eunit/include/eunit.hrl").

%% Loop shapes, each compiled with and without debug_info: the decoder
%% must find exactly the loops the abstract code shows.
-define(SHAPES, "
-module(bd_beam_shapes).
-export([tail/1, ext/1, ping/1, three_a/1, nontail/1, in_case/2, in_try/1, in_lc/1,
         lc_receive/1, named_fun/0, run/0, serve/0, pure/2, bits/1, floats/2, maps_loop/1,
         big/1, apply_loop/2]).
tail(S) -> receive {msg, _} -> tail(S); stop -> ok end.
ext(S) -> receive {msg, _} -> ?MODULE:ext(S); stop -> ok end.
ping(N) -> receive go -> pong(N + 1) end.
pong(N) -> receive go -> ping(N + 1) end.
three_a(X) -> three_b(X).
three_b(X) -> three_c(X).
three_c(X) -> receive _ -> three_a(X) end.
nontail(N) -> receive {add, M} -> M + nontail(N); stop -> N end.
in_case(S, T) ->
    case gen_tcp:recv(S, 0, T) of
        {ok, _} -> in_case(S, T);
        {error, _} -> done
    end.
in_try(S) ->
    try gen_tcp:recv(S, 0) of
        {ok, _} -> in_try(S);
        _ -> done
    catch _:_ -> in_try(S)
    end.
in_lc(L) -> [in_lc(X) || X <- L, is_list(X)] ++ [erlang:display(X) || X <- L].
lc_receive(L) -> [receive X -> {I, X} end || I <- L].
named_fun() -> F = fun Loop() -> receive go -> Loop(); stop -> ok end end, F().
run() -> serve(), io:format(\"done~n\").
serve() -> receive {req, P} -> P ! ok, ?MODULE:serve(); stop -> ok end.
pure([], Acc) -> Acc;
pure([H | T], Acc) -> pure(T, H + Acc).
bits(<<X:8, Rest/binary>>) -> bits2(Rest, X);
bits(<<>>) -> ok.
bits2(<<Y:16/little, Rest/bits>>, X) -> io:format(\"~p~n\", [X + Y]), bits(<<Rest/bits>>);
bits2(_, _) -> ok.
floats(X, Y) when is_float(X) -> Z = X * Y + 1.5, if Z > 10.0 -> floats(Z / 2.0, Y); true -> Z end.
maps_loop(#{n := N} = M) when N > 0 -> maps_loop(M#{n := N - 1, seen => [N | maps:get(seen, M, [])]});
maps_loop(M) -> receive _ -> maps_loop(M) after 0 -> M end.
big(N) -> big2(N, 123456789012345678901234567890, -98765432109876543210, -1).
big2(N, A, B, C) when N > 0 -> big2(N - 1, A - 1, B + 1, C * 2) ; big2(_, A, B, C) -> {A, B, C}.
apply_loop(F, X) -> receive _ -> F(X) end.
").

tmp_dir() ->
    Dir = filename:join(["/tmp", "bd_beam_tests_" ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

fas(A) -> lists:sort([{F, Ar} || #{function := F, arity := Ar} <- beamdeck_agent_lint:findings(A)]).

named(L) -> [FA || {F, _} = FA <- L, hd(atom_to_list(F)) =/= $-].

shapes_test_() ->
    {setup, fun tmp_dir/0, fun(Dir) -> os:cmd("rm -rf " ++ Dir) end,
     %% Each compiles the shapes module (twice, some): seconds at load 30,
     %% against EUnit's 5 s default.
     [{"loop shapes: the decoder finds what debug_info shows", timeout, 60, fun same_loops/0},
      {"fun bodies and non-tail waits: what only the beam shows", timeout, 60, fun beam_only/0},
      {"an unknown opcode: lint_unavailable, the safe side, no crash", timeout, 60,
       fun unknown_opcode/0}]}.

same_loops() ->
    {M, WithDebug} = beamdeck_test_util:compile(?SHAPES, [debug_info]),
    {M, Plain} = beamdeck_test_util:compile(?SHAPES, []),
    ?assertMatch({ok, {M, [{debug_info, {debug_info_v1, erl_abstract_code, {none, _}}}]}},
                 beam_lib:chunks(Plain, [debug_info])),
    {ok, D} = beamdeck_agent_lint:analyze_with(debug_info, M, WithDebug),
    {ok, B} = beamdeck_agent_lint:analyze(M, Plain),
    ?assertEqual(beam, maps:get(source, B)),
    Expected = [{big2, 4}, {bits, 1}, {bits2, 2}, {floats, 2}, {in_case, 2}, {in_lc, 1},
                {in_try, 1}, {maps_loop, 1}, {nontail, 1}, {ping, 1}, {pong, 1}, {pure, 2},
                {tail, 1}, {three_a, 1}, {three_b, 1}, {three_c, 1}],
    ?assertEqual(Expected, beamdeck_agent_lint:loops(D)),
    ?assertEqual(Expected, named(beamdeck_agent_lint:loops(B))),
    ?assertEqual(fas(D), named(fas(B))),
    %% Quiet (pure) loops are the same too.
    Quiet = fun(A) -> lists:sort([{F, Ar} || #{function := F, arity := Ar} <- beamdeck_agent_lint:quiet(A)]) end,
    ?assertEqual([{big2, 4}, {floats, 2}, {in_lc, 1}, {pure, 2}], Quiet(D)),
    ?assertEqual(Quiet(D), named(Quiet(B))),
    %% The same through the cache-free entry, and from the debug_info beam.
    {ok, B2} = beamdeck_agent_lint:analyze_with(beam, M, WithDebug),
    ?assertEqual(beamdeck_agent_lint:loops(B), beamdeck_agent_lint:loops(B2)).

beam_only() ->
    {M, Plain} = beamdeck_test_util:compile(?SHAPES, []),
    {ok, B} = beamdeck_agent_lint:analyze(M, Plain),
    %% The named fun loops; its body is a function of its own in the beam.
    [Fun] = [FA || {F, _} = FA <- beamdeck_agent_lint:loops(B), hd(atom_to_list(F)) =:= $-],
    ?assertEqual({'-named_fun/0-Loop/0-0-', 0}, Fun),
    %% run/0 waits on serve/0 (which migrates by itself) in a non-tail call.
    ?assertEqual(#{{run, 0} => [{serve, 0}]}, beamdeck_agent_lint:pins(B)),
    %% The lint names run/0 itself (its frame is what keeps the old code),
    %% at the line of its call to serve/0.
    [Pin] = beamdeck_agent_lint:pin_findings(B),
    ?assertMatch(#{function := run, arity := 0, calls := [{serve, 0}], line := 28, kind := pin}, Pin),
    PinJson = beamdeck_agent_lint:finding_json(Pin),
    ?assertMatch(#{function := <<"run">>, arity := 0, line := 28, evidence := <<"waits on serve/0">>,
                   fix := <<"a tail call to serve/0">>, calls := [<<"serve/0">>]}, PinJson),
    ?assertMatch({_, _}, binary:match(maps:get(message, PinJson),
                                      <<"bd_beam_shapes:run/0 calls bd_beam_shapes:serve/0 in a non-tail call">>)),
    %% Not a loop finding: run/0 does not loop.
    ?assertNot(lists:member({run, 0}, fas(B))),
    %% A process is held by run/0 only while serve/0 is on its stack too.
    Info = beamdeck_agent_lint:stuck_info(B),
    ?assertEqual([{<<"run">>, 0}], beamdeck_agent_lint:stuck([{<<"serve">>, 0}, {<<"run">>, 0}], Info)),
    ?assertEqual([], beamdeck_agent_lint:stuck([{<<"run">>, 0}], Info)),
    ?assertEqual([], beamdeck_agent_lint:stuck([{<<"ext">>, 1}, {<<"serve">>, 0}], Info)),
    ?assertEqual([{<<"tail">>, 1}], beamdeck_agent_lint:stuck([{<<"tail">>, 1}, {<<"run">>, 0}], Info)),
    %% An analysis cached by an older agent has no pins: loops only.
    Old = beamdeck_agent_lint:stuck_info(maps:without([endless, pins], B)),
    ?assertEqual(#{}, maps:get(waits, Old)),
    ?assertEqual([], beamdeck_agent_lint:stuck([{<<"serve">>, 0}, {<<"run">>, 0}], Old)),
    ?assertNot(lists:member({serve, 0}, beamdeck_agent_lint:loops(B))),
    ?assertNot(lists:member({ext, 1}, beamdeck_agent_lint:loops(B))).

%% Opcode 1 (`label') of the first instruction becomes 250.
doctor(Beam) ->
    {ok, M, Chunks} = beam_lib:all_chunks(Beam),
    Doctored = [case Id of
                    "Code" ->
                        <<HS:32, Header:HS/binary, 1, Rest/binary>> = Data,
                        {Id, <<HS:32, Header/binary, 250, Rest/binary>>};
                    _ -> {Id, Data}
                end || {Id, Data} <- Chunks],
    {ok, Bin} = beam_lib:build_module(Doctored),
    {M, Bin}.

unknown_opcode() ->
    {M, Plain} = beamdeck_test_util:compile(?SHAPES, []),
    {M, Bad} = doctor(Plain),
    ?assertEqual({error, {unknown_opcode, 250}}, beamdeck_agent_beam_code:graph(Bad)),
    Msg = <<"cannot analyse bd_beam_shapes: unknown opcode 250">>,
    ?assertEqual({error, Msg}, beamdeck_agent_lint:analyze(M, Bad)),
    %% With debug_info the abstract code still gives the loops.
    {M, WithDebug} = beamdeck_test_util:compile(?SHAPES, [debug_info]),
    {M, BadDebug} = doctor(WithDebug),
    {ok, D} = beamdeck_agent_lint:analyze(M, BadDebug),
    ?assertEqual(debug_info, maps:get(source, D)),
    ?assert(lists:member({tail, 1}, beamdeck_agent_lint:loops(D))),
    %% The plan: a lint_unavailable finding naming the processes, and each
    %% of them on the safe side with the reason in its why.
    {module, M} = code:load_binary(M, "bd_beam_shapes.beam", Plain),
    P = spawn(M, tail, [x]),
    try
        %% The preview reads where P waits: until P runs, that is erlang:apply/2.
        beamdeck_test_util:wait_until(
          fun() -> erlang:process_info(P, current_function) =:= {current_function, {M, tail, 1}} end),
        Preview = beamdeck_agent_preview:preview([{load, {M, brutal_purge, brutal_purge}}],
                                                 #{loops => #{M => {unknown, Msg}}}),
        #{modules := [#{entries := Es}]} = Preview,
        [#{fate := Fate, 'when' := When, why := Why}] = [E || #{pid := Q} = E <- Es, Q =:= P],
        ?assertEqual({killed, make_permanent}, {Fate, When}),
        ?assertMatch({_, _}, binary:match(Why, <<Msg/binary, ", so bd_beam_shapes:tail/1">>)),
        ?assertMatch({_, _}, binary:match(Why, <<"assumed to loop (the safe side)">>)),
        [F] = beamdeck_agent_lint:unavailable_findings(
                [#{module => <<"bd_beam_shapes">>, version => loaded, error => Msg},
                 #{module => <<"bd_beam_shapes">>, version => target, error => <<"x">>}],
                #{{M, <<"tail">>, 1} => [P], {other, <<"f">>, 0} => [self()]}),
        ?assertMatch(#{id := <<"lint_unavailable:bd_beam_shapes">>, check := lint_unavailable,
                       severity := warning, module := <<"bd_beam_shapes">>, count := 1,
                       message := Msg}, F),
        ?assertEqual([beamdeck_agent_terms:pid(P)], maps:get(pids, F))
    after
        exit(P, kill),
        code:purge(M), code:delete(M), code:purge(M)
    end.

%% Every module of the OTP that runs the test decodes: no unknown opcode,
%% no malformed operand (the corpus for OTP 25, 27 and 29 alike).
otp_corpus_test_() ->
    {timeout, 300, fun otp_corpus/0}.

otp_corpus() ->
    Dirs = [D || App <- [erts, kernel, stdlib, sasl, compiler, tools, ssl, inets, mnesia, crypto,
                         public_key, ssh, runtime_tools, syntax_tools, parsetools, xmerl],
                 Lib <- [code:lib_dir(App)], is_list(Lib), D <- [filename:join(Lib, "ebin")]],
    Files = lists:append([filelib:wildcard(filename:join(D, "*.beam")) || D <- Dirs]),
    ?assert(length(Files) > 300),
    Bad = [{filename:basename(F), E} || F <- Files,
                                        {ok, Bin} <- [file:read_file(F)],
                                        {error, E} <- [beamdeck_agent_beam_code:graph(Bin)]],
    ?assertEqual([], Bad),
    {ok, _, Funs, Exports} = beamdeck_agent_beam_code:graph(element(2, code:get_object_code(lists))),
    ?assert(maps:is_key({foldl, 3}, Funs)),
    ?assert(lists:member({foldl, 3}, Exports)).

compact_test() ->
    %% Short, 11-bit and multi-byte forms; negative integers; extended tag.
    ?assertEqual({{u, 5}, <<>>}, beamdeck_agent_beam:compact(<<16#50>>)),
    ?assertEqual({{a, 3}, <<9>>}, beamdeck_agent_beam:compact(<<16#32, 9>>)),
    B1000 = (((1000 bsr 8) bsl 5) bor 16#08) bor 5,
    ?assertEqual({{f, 1000}, <<>>}, beamdeck_agent_beam:compact(<<B1000, (1000 band 255)>>)),
    ?assertEqual({{i, -1}, <<>>}, beamdeck_agent_beam:compact(<<16#19, 16#FF, 16#FF>>)),
    ?assertEqual({{u, 16#123456}, <<>>}, beamdeck_agent_beam:compact(<<16#38, 16#12, 16#34, 16#56>>)),
    ?assertEqual({{z, 1}, <<>>}, beamdeck_agent_beam:compact(<<16#17>>)),
    ?assertMatch({error, <<"not a beam file", _/binary>>}, beamdeck_agent_beam:read(<<"nope">>)).

%% The compiler of the OTP that runs the test (in the test environment,
%% not in the agent) has its own table, generated from genop.tab: every
%% opcode it knows has the same operand count in ours.
opcode_table_matches_the_running_compiler_test() ->
    {module, beam_opcodes} = code:ensure_loaded(beam_opcodes),
    Known = [{N, A} || N <- lists:seq(1, 255),
                       {_, A} <- [try beam_opcodes:opname(N) catch error:_ -> none end]],
    ?assert(length(Known) >= 180),
    ?assertEqual(Known, [{N, beamdeck_agent_beam_ops:arity(N)} || {N, _} <- Known]).
