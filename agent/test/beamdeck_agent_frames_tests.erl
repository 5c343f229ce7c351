-module(beamdeck_agent_frames_tests).
%% How the sampler's frames pack records, mailbox pairs and removals into frames
%% under the connection's frame limit (beamdeck_agent_frames:pack/3).

-include_lib("eunit/include/eunit.hrl").

-define(FRAME_LIMIT, 512 * 1024).

encoded_size(Frame) -> iolist_size(beamdeck_agent_json:encode(Frame)).

fat_record(I) ->
    Pid = iolist_to_binary(io_lib:format("<0.~b.0>", [I])),
    #{pid => Pid, name => binary:copy(<<"n">>, 255), initialCall => binary:copy(<<"i">>, 300),
      currentFunction => binary:copy(<<"c">>, 300), mailbox => 0, memory => 1, reductions => 1,
      status => <<"waiting">>, links => [<<"<0.123456.0>">> || _ <- lists:seq(1, 200)],
      parent => Pid, ancestors => [binary:copy(<<"a">>, 200) || _ <- lists:seq(1, 32)],
      application => <<"app">>}.

pack_fat_records_under_512k_test() ->
    Records = [fat_record(I) || I <- lists:seq(1, 1200)],
    Chunks = beamdeck_agent_frames:pack(Records, [], []),
    ?assert(length(Chunks) > 2),
    ?assertEqual(Records, lists:append([U || {U, _, _} <- Chunks])),
    [?assert(encoded_size(#{type => procs, upsert => U, mailbox => M, remove => R}) < ?FRAME_LIMIT)
     || {U, M, R} <- Chunks].

pack_counts_and_pairs_test() ->
    Small = [#{pid => <<"<0.1.0>">>} || _ <- lists:seq(1, 2500)],
    Pairs = [[<<"<0.100000.0>">>, 123456] || _ <- lists:seq(1, 150000)],
    Removes = [<<"<0.200000.0>">> || _ <- lists:seq(1, 30000)],
    Chunks = beamdeck_agent_frames:pack(Small, Pairs, Removes),
    [?assert(length(U) =< 1000) || {U, _, _} <- Chunks],
    ?assertEqual(2500, length(lists:append([U || {U, _, _} <- Chunks]))),
    ?assertEqual(Pairs, lists:append([M || {_, M, _} <- Chunks])),
    ?assertEqual(Removes, lists:append([R || {_, _, R} <- Chunks])),
    [?assert(encoded_size(#{upsert => U, mailbox => M, remove => R}) < ?FRAME_LIMIT)
     || {U, M, R} <- Chunks],
    ?assertEqual([{[], [], []}], beamdeck_agent_frames:pack([], [], [])).
