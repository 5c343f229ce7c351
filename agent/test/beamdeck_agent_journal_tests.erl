-module(beamdeck_agent_journal_tests).

-include_lib("eunit/include/eunit.hrl").

journal_test_() ->
    {foreach,
     fun() ->
             Dir = filename:join(["/tmp", "bd_journal_tests_" ++ os:getpid(),
                                  integer_to_list(erlang:unique_integer([positive]))]),
             ok = filelib:ensure_dir(filename:join(Dir, "x")),
             Dir
     end,
     fun(Dir) -> os:cmd("rm -rf " ++ filename:dirname(Dir)) end,
     %% Each put syncs the file to disk: on a disk shared with other work a
     %% sync can take 100 ms and more, 60 of them far past EUnit's 5 s default.
     [fun(Dir) -> {timeout, 60, ?_test(persists(Dir))} end,
      fun(Dir) -> {timeout, 60, ?_test(bounded(Dir))} end,
      fun(Dir) -> {timeout, 60, ?_test(corrupt(Dir))} end,
      fun(Dir) -> {timeout, 60, ?_test(unwritable(Dir))} end]}.

entry(Id, Status) ->
    #{id => Id, action => install, vsn => <<"0.1.1">>, status => Status, step => <<"install_release">>,
      params => #{<<"purge">> => #{<<"Elixir.TestListener">> => <<"soft">>}},
      result => #{deaths => #{predicted => 2, predictedAndDied => [#{pid => <<"<0.1.0>">>}]},
                  text => <<"héllo"/utf8>>},
      ok => Status =:= done, error => null, startedAt => 1, finishedAt => null}.

persists(Dir) ->
    J0 = beamdeck_agent_journal:open(Dir),
    ?assertEqual([], beamdeck_agent_journal:entries(J0)),
    ?assertEqual(filename:join(Dir, "beamdeck_agent_journal.term"), beamdeck_agent_journal:file(J0)),
    {ok, J1} = beamdeck_agent_journal:put(entry(<<"c-1">>, running), J0),
    %% Written before put/2 returns: a fresh open sees it.
    ?assertEqual({ok, entry(<<"c-1">>, running)},
                 beamdeck_agent_journal:find(<<"c-1">>, beamdeck_agent_journal:open(Dir))),
    {ok, J2} = beamdeck_agent_journal:put(entry(<<"c-2">>, running), J1),
    {ok, J3} = beamdeck_agent_journal:put(entry(<<"c-1">>, done), J2),
    %% Replacing keeps the order (newest first by first insertion).
    ?assertEqual([<<"c-2">>, <<"c-1">>], [I || #{id := I} <- beamdeck_agent_journal:entries(J3)]),
    Reopened = beamdeck_agent_journal:open(Dir),
    ?assertEqual(beamdeck_agent_journal:entries(J3), beamdeck_agent_journal:entries(Reopened)),
    ?assertEqual([entry(<<"c-1">>, done)], beamdeck_agent_journal:recent(10, Reopened)),
    ?assertEqual(error, beamdeck_agent_journal:find(<<"c-3">>, Reopened)),
    %% The file is an Erlang term an operator can read, and no temp file remains.
    ?assertMatch({ok, [{beamdeck_agent_journal, 1, [_, _]}]},
                 file:consult(beamdeck_agent_journal:file(Reopened))),
    ?assertEqual(["beamdeck_agent_journal.term"], filelib:wildcard("*", Dir)).

bounded(Dir) ->
    J = lists:foldl(fun(N, Acc) ->
                            {ok, A} = beamdeck_agent_journal:put(entry(integer_to_binary(N), done), Acc),
                            A
                    end, beamdeck_agent_journal:open(Dir), lists:seq(1, 60)),
    Es = beamdeck_agent_journal:entries(beamdeck_agent_journal:open(Dir)),
    ?assertEqual(50, length(Es)),
    ?assertEqual(<<"60">>, maps:get(id, hd(Es))),
    ?assertEqual(3, length(beamdeck_agent_journal:recent(3, J))).

corrupt(Dir) ->
    File = filename:join(Dir, "beamdeck_agent_journal.term"),
    ok = file:write_file(File, <<"{beamdeck_agent_journal, 1, [#{id => ">>),
    J = beamdeck_agent_journal:open(Dir),
    ?assertEqual([], beamdeck_agent_journal:entries(J)),
    ?assert(filelib:is_regular(File ++ ".bad")),
    {ok, _} = beamdeck_agent_journal:put(entry(<<"c-9">>, done), J),
    ?assertMatch({ok, _}, beamdeck_agent_journal:find(<<"c-9">>, beamdeck_agent_journal:open(Dir))).

unwritable(Dir) ->
    %% A directory where the file should be: the write fails, and says where.
    File = filename:join(Dir, "beamdeck_agent_journal.term"),
    ok = file:make_dir(File),
    J = #{file => File, entries => []},
    {error, Why, _} = beamdeck_agent_journal:put(entry(<<"c-1">>, running), J),
    ?assertMatch({0, _}, binary:match(Why, list_to_binary(File))).
