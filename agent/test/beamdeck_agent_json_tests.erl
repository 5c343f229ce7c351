-module(beamdeck_agent_json_tests).

-include_lib("eunit/include/eunit.hrl").

enc(T) -> iolist_to_binary(beamdeck_agent_json:encode(T)).
dec(B) -> beamdeck_agent_json:decode(B).

%%% ENCODING %%%

literals_test() ->
    ?assertEqual(<<"null">>, enc(null)),
    ?assertEqual(<<"true">>, enc(true)),
    ?assertEqual(<<"false">>, enc(false)),
    ?assertEqual(<<"\"code_server\"">>, enc(code_server)),
    ?assertEqual(<<"\"Elixir.TestListener\"">>, enc('Elixir.TestListener')),
    ?assertEqual(<<"\"\"">>, enc(<<>>)),
    ?assertEqual(<<"[]">>, enc([])),
    ?assertEqual(<<"{}">>, enc(#{})).

integers_test() ->
    ?assertEqual(<<"0">>, enc(0)),
    ?assertEqual(<<"-42">>, enc(-42)),
    ?assertEqual(<<"9007199254740991">>, enc(9007199254740991)),
    ?assertEqual(<<"-9007199254740991">>, enc(-9007199254740991)),
    ?assertEqual(<<"\"9007199254740992\"">>, enc(9007199254740992)),
    ?assertEqual(<<"\"-9007199254740992\"">>, enc(-9007199254740992)),
    ?assertEqual(<<"\"123456789012345678901234567890\"">>, enc(123456789012345678901234567890)).

floats_test() ->
    ?assertEqual(<<"0.1">>, enc(0.1)),
    ?assertEqual(<<"-2.5">>, enc(-2.5)),
    ?assertEqual(<<"1.0">>, enc(1.0)),
    ?assertEqual({ok, 1.0e20}, dec(enc(1.0e20))),
    ?assertEqual({ok, 1.5e-10}, dec(enc(1.5e-10))).

string_escapes_test() ->
    ?assertEqual(<<"\"a\\\"b\\\\c\"">>, enc(<<"a\"b\\c">>)),
    ?assertEqual(<<"\"\\n\\r\\t\\b\\f\"">>, enc(<<"\n\r\t\b\f">>)),
    ?assertEqual(<<"\"\\u0000\\u0001\\u001f\"">>, enc(<<0, 1, 31>>)),
    ?assertEqual(<<"\"/\"">>, enc(<<"/">>)),
    %% Non-ASCII is written as UTF-8, not escaped.
    ?assertEqual(<<"\"", "héllo €𝄞"/utf8, "\"">>, enc(<<"héllo €𝄞"/utf8>>)),
    %% DEL is not a control character in JSON.
    ?assertEqual(<<"\"", 127, "\"">>, enc(<<127>>)).

invalid_utf8_replaced_test() ->
    ?assertEqual(<<"\"a", 16#FFFD/utf8, "b\"">>, enc(<<"a", 255, "b">>)),
    ?assertEqual(<<"\"", 16#FFFD/utf8, "\"">>, enc(<<16#C3>>)),
    %% The output is always valid UTF-8 JSON that decodes again.
    {ok, Dec} = dec(enc(<<"x", 16#E2, 16#82, "y">>)),
    ?assert(is_binary(unicode:characters_to_binary(Dec))).

containers_test() ->
    ?assertEqual(<<"[1,2,3]">>, enc([1, 2, 3])),
    ?assertEqual(<<"[[],{}]">>, enc([[], #{}])),
    ?assertEqual(<<"{\"a\":1}">>, enc(#{a => 1})),
    ?assertEqual(<<"{\"a\":1}">>, enc(#{<<"a">> => 1})),
    ?assertEqual(<<"{\"7\":true}">>, enc(#{7 => true})),
    {ok, M} = dec(enc(#{type => hello, n => [1, <<"x">>, null], nested => #{k => false}})),
    ?assertEqual(#{<<"type">> => <<"hello">>, <<"n">> => [1, <<"x">>, null],
                   <<"nested">> => #{<<"k">> => false}}, M).

unsupported_terms_test() ->
    ?assertError({unsupported_json_term, _}, enc({a, b})),
    ?assertError({unsupported_json_term, _}, enc(self())),
    ?assertError({unsupported_json_term, _}, enc(#{{a} => 1})),
    ?assertError({unsupported_json_term, _}, enc([1 | 2])),
    ?assertError({unsupported_json_term, _}, enc(#{a => [fun() -> ok end]})).

%%% DECODING %%%

decode_literals_test() ->
    ?assertEqual({ok, null}, dec(<<"null">>)),
    ?assertEqual({ok, true}, dec(<<"true">>)),
    ?assertEqual({ok, false}, dec(<<" false ">>)),
    ?assertEqual({ok, <<"x">>}, dec(<<"\"x\"">>)),
    ?assertEqual({ok, []}, dec(<<"[ ]">>)),
    ?assertEqual({ok, #{}}, dec(<<"{ }">>)),
    ?assertEqual({ok, [1, 2]}, dec(<<"\r\n\t[1 ,\n2]\n">>)).

decode_numbers_test() ->
    ?assertEqual({ok, 0}, dec(<<"0">>)),
    ?assertEqual({ok, 0}, dec(<<"-0">>)),
    ?assertEqual({ok, -12}, dec(<<"-12">>)),
    ?assertEqual({ok, 12345678901234567890}, dec(<<"12345678901234567890">>)),
    ?assertEqual({ok, 1.5}, dec(<<"1.5">>)),
    ?assertEqual({ok, -0.25}, dec(<<"-0.25">>)),
    ?assertEqual({ok, 100000.0}, dec(<<"1e5">>)),
    ?assertEqual({ok, 100000.0}, dec(<<"1E+5">>)),
    ?assertEqual({ok, 0.001}, dec(<<"1e-3">>)),
    ?assertEqual({ok, 250.0}, dec(<<"2.5e2">>)),
    ?assertEqual({ok, [1.0e-5]}, dec(<<"[1.0E-5]">>)).

decode_bad_numbers_test() ->
    [?assertMatch({error, _}, dec(B), B) ||
        B <- [<<"01">>, <<"-">>, <<"1.">>, <<".5">>, <<"1e">>, <<"1e+">>,
              <<"+1">>, <<"1.e5">>, <<"--1">>, <<"0x10">>, <<"1e400">>,
              <<"NaN">>, <<"Infinity">>, <<"-Infinity">>, <<"1 2">>]].

decode_strings_test() ->
    ?assertEqual({ok, <<"a\"b\\c/d">>}, dec(<<"\"a\\\"b\\\\c\\/d\"">>)),
    ?assertEqual({ok, <<"\b\f\n\r\t">>}, dec(<<"\"\\b\\f\\n\\r\\t\"">>)),
    ?assertEqual({ok, <<"A">>}, dec(<<"\"\\u0041\"">>)),
    ?assertEqual({ok, <<"é"/utf8>>}, dec(<<"\"\\u00e9\"">>)),
    ?assertEqual({ok, <<"€"/utf8>>}, dec(<<"\"\\u20AC\"">>)),
    ?assertEqual({ok, <<"héllo 𝄞"/utf8>>}, dec(<<"\"héllo 𝄞\""/utf8>>)),
    %% Surrogate pair -> one code point (U+1D11E).
    ?assertEqual({ok, <<16#1D11E/utf8>>}, dec(<<"\"\\ud834\\udd1e\"">>)),
    ?assertEqual({ok, <<16#1F600/utf8>>}, dec(<<"\"\\uD83D\\uDE00\"">>)),
    %% Lone surrogates cannot be UTF-8: replaced, not fatal.
    ?assertEqual({ok, <<16#FFFD/utf8, "x">>}, dec(<<"\"\\ud834x\"">>)),
    ?assertEqual({ok, <<16#FFFD/utf8>>}, dec(<<"\"\\udd1e\"">>)),
    ?assertEqual({ok, <<16#FFFD/utf8, "A">>}, dec(<<"\"\\ud834\\u0041\"">>)),
    ?assertEqual({ok, <<0>>}, dec(<<"\"\\u0000\"">>)).

decode_bad_strings_test() ->
    ?assertEqual({error, unexpected_end}, dec(<<"\"abc">>)),
    ?assertEqual({error, unexpected_end}, dec(<<"\"abc\\">>)),
    ?assertEqual({error, unexpected_end}, dec(<<"\"\\u12">>)),
    ?assertEqual({error, {invalid_escape, 1}}, dec(<<"\"\\x\"">>)),
    ?assertEqual({error, {invalid_escape, 1}}, dec(<<"\"\\u12g4\"">>)),
    ?assertEqual({error, {control_character, 2}}, dec(<<"\"a\nb\"">>)),
    ?assertEqual({error, {control_character, 1}}, dec(<<"\"", 0, "\"">>)),
    ?assertEqual({error, {invalid_utf8, 2}}, dec(<<"\"a", 255, "\"">>)),
    ?assertEqual({error, {invalid_utf8, 1}}, dec(<<"\"", 16#C3, 16#28, "\"">>)),
    %% Encoded surrogates and overlong forms are not UTF-8.
    ?assertMatch({error, {invalid_utf8, _}}, dec(<<"\"", 16#ED, 16#A0, 16#80, "\"">>)),
    ?assertMatch({error, {invalid_utf8, _}}, dec(<<"\"", 16#C0, 16#AF, "\"">>)).

decode_objects_test() ->
    ?assertEqual({ok, #{<<"a">> => 1, <<"b">> => [true, null]}},
                 dec(<<"{\"a\": 1, \"b\": [true, null]}">>)),
    ?assertEqual({ok, #{<<"a">> => 2}}, dec(<<"{\"a\":1,\"a\":2}">>)),
    ?assertEqual({ok, #{<<>> => <<>>}}, dec(<<"{\"\":\"\"}">>)),
    ?assertEqual({ok, #{<<"type">> => <<"request">>, <<"id">> => <<"r-42">>,
                        <<"method">> => <<"process_detail">>,
                        <<"params">> => #{<<"pid">> => <<"<0.116.0>">>},
                        <<"timeoutMs">> => 5000}},
                 dec(<<"{\"type\":\"request\",\"id\":\"r-42\",\"method\":\"process_detail\","
                       "\"params\":{\"pid\":\"<0.116.0>\"},\"timeoutMs\":5000}">>)).

decode_malformed_test() ->
    Cases = [{<<>>, unexpected_end},
             {<<"   ">>, unexpected_end},
             {<<"[">>, unexpected_end},
             {<<"[1,">>, unexpected_end},
             {<<"{\"a\"">>, unexpected_end},
             {<<"{\"a\":">>, unexpected_end},
             {<<"[1,]">>, {unexpected_byte, 3}},
             {<<"[,1]">>, {unexpected_byte, 1}},
             {<<"{,}">>, {unexpected_byte, 1}},
             {<<"{\"a\":1,}">>, {unexpected_byte, 7}},
             {<<"{a:1}">>, {unexpected_byte, 1}},
             {<<"{'a':1}">>, {unexpected_byte, 1}},
             {<<"{\"a\" 1}">>, {unexpected_byte, 5}},
             {<<"[1 2]">>, {unexpected_byte, 3}},
             {<<"tru">>, {unexpected_byte, 0}},
             {<<"nul">>, {unexpected_byte, 0}},
             {<<"[true false]">>, {unexpected_byte, 6}},
             {<<"{} x">>, {trailing_data, 3}},
             {<<"1 2">>, {trailing_data, 2}},
             {<<"\"a\"\"b\"">>, {trailing_data, 3}},
             {<<"]">>, {unexpected_byte, 0}},
             {<<16#EF, 16#BB, 16#BF, "{}">>, {unexpected_byte, 0}}],
    [?assertEqual({error, Err}, dec(In), In) || {In, Err} <- Cases],
    ?assertEqual({error, not_binary}, beamdeck_agent_json:decode("[]")).

depth_limit_test() ->
    Deep = fun(N) -> iolist_to_binary([lists:duplicate(N, $[), lists:duplicate(N, $])]) end,
    ?assertMatch({ok, _}, dec(Deep(256))),
    ?assertEqual({error, {too_deep, 256}}, dec(Deep(257))),
    ?assertEqual({error, {too_deep, 256}}, dec(Deep(100000))),
    ?assertMatch({ok, [[[]]]}, beamdeck_agent_json:decode(Deep(3), #{max_depth => 3})),
    ?assertEqual({error, {too_deep, 2}}, beamdeck_agent_json:decode(Deep(3), #{max_depth => 2})),
    DeepObj = iolist_to_binary([lists:duplicate(5, <<"{\"a\":">>), <<"1">>, lists:duplicate(5, $})]),
    ?assertEqual({error, {too_deep, 4}}, beamdeck_agent_json:decode(DeepObj, #{max_depth => 4})),
    ?assertMatch({ok, #{}}, beamdeck_agent_json:decode(DeepObj, #{max_depth => 5})).

%%% ROUND TRIPS %%%

round_trip_test() ->
    Values = [null, true, false, 0, 1, -1, 9007199254740991, 3.25, -1.0e-7, 6.02e23,
              <<>>, <<"plain">>, <<"quote\" backslash\\ slash/">>,
              <<"ctl", 0, 1, 2, 31, 127, "\n\r\t\b\f">>,
              <<"ünïcödé €𝄞 😀"/utf8>>,
              [], [[]], [1, [2, [3, [4]]]],
              #{}, #{<<"a">> => #{<<"b">> => #{<<"c">> => [null, true, <<"d">>]}}},
              #{<<"k\"ey\n">> => <<"v">>}],
    [?assertEqual({ok, V}, dec(enc(V)), V) || V <- Values].

round_trip_generated_test() ->
    rand:seed(exsss, {1, 2, 3}),
    lists:foreach(fun(_) ->
                          V = gen(4),
                          ?assertEqual({ok, V}, dec(enc(V)))
                  end, lists:seq(1, 300)).

%% Random JSON values (binary keys, no atoms) that must survive a round trip.
gen(0) -> gen_scalar();
gen(D) ->
    case rand:uniform(4) of
        1 -> [gen(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)];
        2 -> maps:from_list([{gen_string(), gen(D - 1)} || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        _ -> gen_scalar()
    end.

gen_scalar() ->
    case rand:uniform(6) of
        1 -> lists:nth(rand:uniform(3), [null, true, false]);
        2 -> rand:uniform(1 bsl 53) - (1 bsl 52);
        3 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(40) - 20);
        _ -> gen_string()
    end.

gen_string() ->
    Chars = [lists:nth(rand:uniform(10), [0, 9, 31, $", $\\, $a, $/, 16#E9, 16#20AC, 16#1F600])
             || _ <- lists:seq(1, rand:uniform(8) - 1)],
    unicode:characters_to_binary(Chars).

big_document_test() ->
    Records = [#{pid => list_to_binary(io_lib:format("<0.~b.0>", [N])), mailbox => N,
                 name => null, memory => N * 1000, status => waiting,
                 links => [<<"<0.1.0>">>, <<"#Port<0.7>">>]} || N <- lists:seq(1, 5000)],
    Frame = #{type => procs, seq => 1, reset => true, upsert => Records},
    Bin = enc(Frame),
    ?assert(byte_size(Bin) > 100000),
    {ok, Dec} = dec(Bin),
    ?assertEqual(5000, length(maps:get(<<"upsert">>, Dec))),
    ?assertEqual(#{<<"pid">> => <<"<0.77.0>">>, <<"mailbox">> => 77, <<"name">> => null,
                   <<"memory">> => 77000, <<"status">> => <<"waiting">>,
                   <<"links">> => [<<"<0.1.0>">>, <<"#Port<0.7>">>]},
                 lists:nth(77, maps:get(<<"upsert">>, Dec))).
