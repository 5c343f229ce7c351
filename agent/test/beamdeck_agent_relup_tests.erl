-module(beamdeck_agent_relup_tests).

-include_lib("eunit/include/eunit.hrl").

%% As systools wrote it for rel_test 0.1.0 -> 0.1.1 (the forum's upgrade).
-define(RELUP,
        {"0.1.1",
         [{"0.1.0", [],
           [{load_object_code, {rel_test, "0.1.1", ['Elixir.TestListener']}},
            point_of_no_return,
            {load, {'Elixir.TestListener', brutal_purge, brutal_purge}}]}],
         [{"0.1.0", [],
           [{load_object_code, {rel_test, "0.1.0", ['Elixir.TestListener']}},
            point_of_no_return,
            {load, {'Elixir.TestListener', brutal_purge, brutal_purge}}]}]}).

-define(UPDATE,
        [{load_object_code, {bd_counter, "1.1.0", [bd_counter_server, bd_counter_gone]}},
         point_of_no_return,
         {suspend, [bd_counter_server]},
         {load, {bd_counter_server, brutal_purge, brutal_purge}},
         {code_change, up, [{bd_counter_server, []}]},
         {resume, [bd_counter_server]},
         {remove, {bd_counter_gone, brutal_purge, brutal_purge}},
         {purge, [bd_counter_gone]}]).

script() ->
    {_, [{_, _, S}], _} = ?RELUP,
    S.

%%% CHOICES %%%

choices_test() ->
    S = script(),
    ?assertEqual({ok, #{pre => #{}, post => #{'Elixir.TestListener' => soft_purge}}},
                 beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"Elixir.TestListener">> => <<"soft">>}}, S)),
    %% The Elixir alias works, and so do both spellings of the values.
    ?assertEqual({ok, #{pre => #{'Elixir.TestListener' => soft_purge},
                        post => #{'Elixir.TestListener' => brutal_purge}}},
                 beamdeck_agent_relup:choices(#{<<"prePurge">> => #{<<"TestListener">> => <<"soft_purge">>},
                                                <<"purge">> => #{<<"TestListener">> => <<"brutal">>}}, S)),
    ?assertEqual({ok, #{pre => #{}, post => #{}}}, beamdeck_agent_relup:choices(#{}, S)),
    {error, bad_request, Msg} =
        beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"TestListner">> => <<"soft">>}}, S),
    ?assertMatch({_, _}, binary:match(Msg, <<"TestListner is not loaded or removed by this relup">>)),
    ?assertMatch({_, _}, binary:match(Msg, <<"Elixir.TestListener">>)),
    ?assertMatch({error, bad_request, <<"purge.Elixir.TestListener: expected", _/binary>>},
                 beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"Elixir.TestListener">> => <<"gentle">>}}, S)),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_relup:choices(#{<<"purge">> => [1]}, S)),
    %% Lenient (an install's choices reused for its rollback): modules the
    %% script does not change are dropped, bad values still refused.
    ?assertEqual({ok, #{pre => #{}, post => #{'Elixir.TestListener' => soft_purge}}},
                 beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"TestListener">> => <<"soft">>,
                                                                 <<"Elixir.Gone">> => <<"soft">>}}, S, lenient)),
    ?assertMatch({error, bad_request, _},
                 beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"TestListener">> => <<"x">>}}, S, lenient)).

apply_choices_test() ->
    S = script(),
    {ok, C} = beamdeck_agent_relup:choices(#{<<"purge">> => #{<<"TestListener">> => <<"soft">>}}, S),
    {S2, Changes} = beamdeck_agent_relup:apply_choices(S, C),
    ?assertEqual([{load_object_code, {rel_test, "0.1.1", ['Elixir.TestListener']}},
                  point_of_no_return,
                  {load, {'Elixir.TestListener', brutal_purge, soft_purge}}], S2),
    ?assertEqual([#{module => 'Elixir.TestListener', field => postPurge,
                    from => brutal_purge, to => soft_purge}], Changes),
    ?assertEqual({S, []}, beamdeck_agent_relup:apply_choices(S, #{pre => #{}, post => #{}})),
    %% diff/2 finds the same changes between the original and the rewrite.
    ?assertEqual(Changes, beamdeck_agent_relup:diff(S, S2)),
    ?assertEqual([], beamdeck_agent_relup:diff(S, S)),
    ?assertEqual(#{purge => #{<<"Elixir.TestListener">> => <<"soft">>}, prePurge => #{}},
                 beamdeck_agent_relup:choices_json(C)).

modules_test() ->
    [Server, Gone] = beamdeck_agent_relup:modules(?UPDATE),
    ?assertEqual(#{module => bd_counter_server, op => load, app => bd_counter,
                   pre => brutal_purge, post => brutal_purge, suspend => true,
                   code_change => {up, []}, purged_at_install => false}, Server),
    ?assertMatch(#{module := bd_counter_gone, op := remove, suspend := false,
                   code_change := none, purged_at_install := true}, Gone),
    ?assertEqual(none, beamdeck_agent_relup:restarts(?UPDATE)),
    ?assertEqual(restart_new_emulator, beamdeck_agent_relup:restarts([restart_new_emulator | ?UPDATE])),
    ?assertEqual(restart_emulator, beamdeck_agent_relup:restarts(?UPDATE ++ [restart_emulator])),
    ?assertEqual([rel_x], beamdeck_agent_relup:stopped_apps([{apply, {application, stop, [rel_x]}}])).

%%% REWRITE %%%

rewrite_test_() ->
    {setup,
     fun() ->
             Dir = filename:join("/tmp", "bd_relup_tests_" ++ os:getpid()),
             File = filename:join([Dir, "releases", "0.1.1", "relup"]),
             ok = filelib:ensure_dir(File),
             ok = file:write_file(File, io_lib:format("%% coding: utf-8~n~tp.~n", [?RELUP])),
             {Dir, File}
     end,
     fun({Dir, _}) -> os:cmd("rm -rf " ++ Dir) end,
     fun({_Dir, File}) -> [{inorder, [?_test(rewrite(File)), ?_test(bad_files(File))]}] end}.

consult(File) ->
    {ok, [T]} = file:consult(File),
    T.

post(File, Section) ->
    {_, Ups, Downs} = consult(File),
    [{_, _, S}] = case Section of up -> Ups; down -> Downs end,
    [P || {load, {_, _, P}} <- S].

pre(File, Section) ->
    {_, Ups, Downs} = consult(File),
    [{_, _, S}] = case Section of up -> Ups; down -> Downs end,
    [P || {load, {_, P, _}} <- S].

rewrite(File) ->
    Orig = beamdeck_agent_relup:orig_file(File),
    {ok, Bytes} = file:read_file(File),
    Soft = #{pre => #{}, post => #{'Elixir.TestListener' => soft_purge}},
    {ok, R} = beamdeck_agent_relup:rewrite(File, up, "0.1.0", Soft),
    ?assertEqual(File, maps:get(file, R)),
    ?assertEqual(Orig, maps:get(orig, R)),
    ?assertEqual(1, length(maps:get(changes, R))),
    %% The original is kept byte for byte; the file holds the choice, and
    %% release_handler can read it.
    ?assertEqual({ok, Bytes}, file:read_file(Orig)),
    ?assertEqual([soft_purge], post(File, up)),
    ?assertEqual([brutal_purge], post(File, down)),
    ?assertMatch({ok, {"0.1.1", _, _}}, beamdeck_agent_relup_read:read_relup(File)),
    %% A second rewrite starts from the original, not from the first rewrite.
    PreSoft = #{pre => #{'Elixir.TestListener' => soft_purge}, post => #{}},
    {ok, _} = beamdeck_agent_relup:rewrite(File, up, "0.1.0", PreSoft),
    ?assertEqual([brutal_purge], post(File, up)),
    ?assertEqual([soft_purge], pre(File, up)),
    ?assertEqual({ok, Bytes}, file:read_file(Orig)),
    %% The downgrade section can be rewritten on its own.
    {ok, _} = beamdeck_agent_relup:rewrite(File, down, "0.1.0", Soft),
    ?assertEqual([soft_purge], post(File, down)),
    ?assertEqual([brutal_purge], pre(File, up)),
    %% No choices: the original content comes back.
    {ok, #{changes := []}} = beamdeck_agent_relup:rewrite(File, up, "0.1.0", #{pre => #{}, post => #{}}),
    ?assertEqual({ok, Bytes}, file:read_file(File)),
    %% The locate step sees the original script and what is on disk.
    {ok, _} = beamdeck_agent_relup:rewrite(File, up, "0.1.0", Soft),
    RelDir = filename:dirname(filename:dirname(File)),
    {ok, Loc} = beamdeck_agent_relup_read:locate(RelDir, "0.1.0", "0.1.1"),
    ?assertMatch(#{direction := up, section := up, rewritten_on_disk := true}, Loc),
    ?assertEqual([brutal_purge], [P || {load, {_, _, P}} <- maps:get(script, Loc)]),
    ?assertEqual([soft_purge], [P || {load, {_, _, P}} <- maps:get(on_disk, Loc)]),
    %% restore/1 puts the original back.
    ok = beamdeck_agent_relup:restore(File),
    ?assertEqual({ok, Bytes}, file:read_file(File)),
    %% Someone replaces the relup (a new unpack): that becomes the original.
    New = setelement(1, ?RELUP, "0.1.1"),
    NewBytes = iolist_to_binary(io_lib:format("%% new~n~tp.~n", [New])),
    ok = file:write_file(File, NewBytes),
    {ok, _} = beamdeck_agent_relup:rewrite(File, up, "0.1.0", Soft),
    ?assertEqual({ok, NewBytes}, file:read_file(Orig)),
    ok = beamdeck_agent_relup:restore(File),
    ?assertEqual({ok, NewBytes}, file:read_file(File)),
    ?assertMatch({error, no_relup, _}, beamdeck_agent_relup:rewrite(File, up, "0.0.9", Soft)),
    %% No temporary files are left behind.
    ?assertEqual(["relup", "relup.beamdeck-orig"], lists:sort(filelib:wildcard("*", filename:dirname(File)))).

bad_files(File) ->
    RelDir = filename:dirname(filename:dirname(File)),
    ok = file:write_file(File, <<"{\"0.1.1\", [{\"0.1.0\", [], [point_of_no_return]}], [] \n">>),
    _ = file:delete(beamdeck_agent_relup:orig_file(File)),
    {error, bad_relup, Msg} = beamdeck_agent_relup_read:locate(RelDir, "0.1.0", "0.1.1"),
    ?assertMatch({0, _}, binary:match(Msg, list_to_binary(File))),
    ok = file:write_file(File, <<"{\"0.1.1\", not_a_list, []}.\n">>),
    {error, bad_relup, Msg2} = beamdeck_agent_relup_read:read_relup(File),
    ?assertMatch({_, _}, binary:match(Msg2, <<"expected one term {Vsn, Ups, Downs}">>)),
    ok = file:write_file(File, <<"{\"0.1.1\", [{\"0.1.0\", []}], []}.\n">>),
    {error, bad_relup, Msg3} = beamdeck_agent_relup_read:read_relup(File),
    ?assertMatch({_, _}, binary:match(Msg3, <<"malformed entry">>)),
    ok = file:write_file(File, <<"{\"0.9\", [], []}.\n">>),
    {error, bad_relup, Msg4} = beamdeck_agent_relup_read:locate(RelDir, "0.1.0", "0.1.1"),
    ?assertMatch({_, _}, binary:match(Msg4, <<"is for version 0.9, not 0.1.1">>)),
    ok = file:delete(File),
    {error, no_relup, Msg5} = beamdeck_agent_relup_read:locate(RelDir, "0.1.0", "0.1.1"),
    %% Both places release_handler looks are named.
    ?assertMatch({_, _}, binary:match(Msg5, list_to_binary(File))),
    ?assertMatch({_, _}, binary:match(Msg5, list_to_binary(filename:join([RelDir, "0.1.0", "relup"])))),
    ?assertMatch({error, missing_file, _}, beamdeck_agent_relup_read:read_relup(File)).
