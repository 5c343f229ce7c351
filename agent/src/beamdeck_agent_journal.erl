%%% @doc The upgrade command journal: a small file that survives a node
%%% restart.
%%%
%%% An upgrade step can restart the node (a failed `install_release' after
%%% the point of no return restarts it; `restart_new_emulator' reboots it on
%%% purpose), so the command id, what it was doing and how it ended are
%%% written before and after every step. After a restart the agent reads
%%% the journal, finds the step that was running and reports its outcome;
%%% a repeated command id is answered from here instead of running twice.
%%%
%%% The file (`beamdeck_agent_journal.term') lives in the `state_dir'
%%% setting's directory, else the release directory when release_handler
%%% runs, else a per-user cache directory. It holds the last ?MAX entries
%%% as one Erlang term, readable with `file:consult/1', and is replaced by
%%% write-then-rename with the data synced to disk before the rename.
-module(beamdeck_agent_journal).

-export([default_dir/0, open/1, entries/1, find/2, put/2, recent/2]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([file/1]).
-endif.

-define(JOURNAL_FILE, "beamdeck_agent_journal.term").
-define(MAX, 50).
-define(TAG, beamdeck_agent_journal).
-define(VERSION, 1).

-type entry() :: #{id := binary(), _ => _}.
-type journal() :: #{file := string(), entries := [entry()]}.
-export_type([journal/0, entry/0]).

%% @doc Where the journal lives when no directory is given.
-spec default_dir() -> string().
default_dir() ->
    case beamdeck_agent_config:get(state_dir) of
        Dir when is_list(Dir), Dir =/= "" -> Dir;
        Dir when is_binary(Dir), Dir =/= <<>> -> unicode:characters_to_list(Dir);
        _ ->
            case whereis(release_handler) of
                undefined -> filename:basedir(user_cache, "beamdeck_agent");
                _ -> beamdeck_agent_release:rel_dir()
            end
    end.

%% @doc Open (read) the journal in `Dir'. A missing file is an empty
%% journal; an unreadable one is kept aside as `….bad' and the journal
%% starts empty (the agent must not stop over it), with a warning logged.
-spec open(Dir) -> journal() when Dir :: string().
open(Dir) ->
    File = filename:join(Dir, ?JOURNAL_FILE),
    Entries = case file:consult(File) of
                  {ok, [{?TAG, ?VERSION, List}]} when is_list(List) ->
                      [E || #{id := Id} = E <- List, is_binary(Id)];
                  {error, enoent} -> [];
                  Other ->
                      logger:warning("beamdeck agent: unreadable command journal ~ts (~0tp); "
                                     "kept as ~ts.bad, starting a new one", [File, Other, File]),
                      _ = file:rename(File, File ++ ".bad"),
                      []
              end,
    #{file => File, entries => Entries}.

-ifdef(TEST).
%% @doc The journal's file name.
-spec file(Journal) -> string() when Journal :: journal().
file(#{file := F}) -> F.
-endif.

%% @doc All entries, newest first.
-spec entries(Journal) -> [entry()] when Journal :: journal().
entries(#{entries := E}) -> E.

%% @doc The entry of a command id.
-spec find(Id, Journal) -> {ok, entry()} | error when Id :: binary(), Journal :: journal().
find(Id, #{entries := Es}) ->
    case lists:search(fun(#{id := I}) -> I =:= Id end, Es) of
        {value, E} -> {ok, E};
        false -> error
    end.

%% @doc Insert or replace an entry (by id; a new id goes first) and write
%% the file before returning. The journal keeps the newest ?MAX entries.
-spec put(Entry, Journal) -> {ok, journal()} | {error, Why :: binary(), journal()}
    when Entry :: entry(), Journal :: journal().
put(#{id := Id} = Entry, #{entries := Es} = J) ->
    New = case lists:any(fun(#{id := I}) -> I =:= Id end, Es) of
              true -> [case E of #{id := Id} -> Entry; _ -> E end || E <- Es];
              false -> lists:sublist([Entry | Es], ?MAX)
          end,
    J1 = J#{entries := New},
    case write(J1) of
        ok -> {ok, J1};
        {error, Why} -> {error, Why, J1}
    end.

%% @doc The newest `N' entries that have finished.
-spec recent(N, Journal) -> [entry()] when N :: non_neg_integer(), Journal :: journal().
recent(N, #{entries := Es}) ->
    lists:sublist([E || #{status := done} = E <- Es], N).

write(#{file := File, entries := Es}) ->
    Text = io_lib:format("%% beamdeck agent: upgrade command journal (newest first).~n"
                         "%% Written by the agent before and after every step; do not edit.~n"
                         "~tp.~n", [{?TAG, ?VERSION, Es}]),
    case beamdeck_agent_file:atomic_write(File, unicode:characters_to_binary(Text)) of
        ok -> ok;
        {error, R} ->
            {error, unicode:characters_to_binary(io_lib:format("~ts: ~ts", [File, reason(R)]))}
    end.

reason(R) -> file:format_error(R).
