%%% @doc sys.config of the two releases (issue 13).
%%%
%%% - `sys_config_unreadable' (error): the target release's sys.config does
%%%   not parse as one list of `{App, [{Key, Value}]}' (or included file
%%%   names): release_handler's install fails on it.
%%% - `sys_config_changed' (warning): keys whose values differ; the upgrade
%%%   sets them (and calls the applications' `config_change/3'), but code
%%%   that read them at start keeps the old values. Included config files
%%%   (strings in the list) are named, not followed.
-module(beamdeck_agent_check_sys_config).

-export([check/1, changed_keys/2, parse/1]).

-define(MAX_KEYS, 50).

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{path := #{from := From, to := To} = Path}) ->
    RelDir = beamdeck_agent_release:rel_dir(),
    FromFile = filename:join([RelDir, From, "sys.config"]),
    Old = case file:read_file(FromFile) of
              {ok, B} -> parse(B);
              {error, _} -> {ok, []}
          end,
    case target_bytes(Path, RelDir, To) of
        none -> [];
        {Label, Bytes} ->
            case {Old, parse(Bytes)} of
                {_, {error, Why}} ->
                    [beamdeck_agent_findings:new(
                       sys_config_unreadable, null, [],
                       beamdeck_agent_terms:fmt("~ts: ~ts", [Label, Why]),
                       <<"fix the target release's sys.config (one Erlang list of {App, [{Key, Value}]} "
                         "ending with a dot) and rebuild the package">>)];
                {{ok, OldTerms}, {ok, NewTerms}} ->
                    case changed_keys(OldTerms, NewTerms) of
                        [] -> [];
                        Keys ->
                            [beamdeck_agent_findings:new(
                               sys_config_changed, null, [],
                               beamdeck_agent_terms:fmt("the target's sys.config changes ~b key(s): ~ts", [length(Keys), names(Keys)]),
                               <<"make sure the applications handle config_change/3 or read these keys "
                                 "again; code that read them at start keeps the old values">>)]
                    end;
                {{error, _}, {ok, _}} -> []   % the running one is the node's business
            end
    end.

target_bytes(#{source := {package, Tar}}, _RelDir, To) ->
    Name = "releases/" ++ To ++ "/sys.config",
    case erl_tar:extract(Tar, [memory, compressed, {files, [Name]}]) of
        {ok, [{_, Bin}]} -> {Tar ++ ":" ++ Name, Bin};
        _ -> none
    end;
target_bytes(_Dir, RelDir, To) ->
    File = filename:join([RelDir, To, "sys.config"]),
    case file:read_file(File) of
        {ok, Bin} -> {File, Bin};
        {error, enoent} -> none;
        {error, R} -> {File, iolist_to_binary(["%% unreadable: ", file:format_error(R)])}
    end.

%% @doc Parse the text of a sys.config: `{ok, Terms}' or `{error, Why}'.
-spec parse(Bytes) -> {ok, list()} | {error, binary()} when Bytes :: binary().
parse(<<"%% unreadable: ", Why/binary>>) -> {error, Why};
parse(Bytes) ->
    Text = case unicode:characters_to_list(Bytes) of
               L when is_list(L) -> L;
               _ -> error
           end,
    case Text =/= error andalso erl_scan:string(Text) of
        false -> {error, <<"not UTF-8 text">>};
        {ok, Tokens, _} ->
            case erl_parse:parse_term(Tokens) of
                {ok, Terms} when is_list(Terms) ->
                    case lists:all(fun valid_entry/1, Terms) of
                        true -> {ok, Terms};
                        false -> {error, <<"not a list of {Application, [{Key, Value}]} or file names">>}
                    end;
                {ok, _} -> {error, <<"not a list">>};
                {error, {Line, M, Desc}} ->
                    {error, beamdeck_agent_terms:fmt("line ~p: ~ts", [line(Line), M:format_error(Desc)])}
            end;
        {error, {Line, M, Desc}, _} -> {error, beamdeck_agent_terms:fmt("line ~p: ~ts", [line(Line), M:format_error(Desc)])}
    end.

line({L, _}) -> L;
line(L) -> L.

valid_entry({App, KVs}) when is_atom(App), is_list(KVs) -> true;
valid_entry(File) when is_list(File) -> io_lib:printable_unicode_list(File);
valid_entry(_) -> false.

%% @doc The `{App, Key}' (or `{file, Name}') entries whose values differ
%% between two parsed sys.configs, sorted.
-spec changed_keys(Old, New) -> [{atom() | file, term()}] when Old :: list(), New :: list().
changed_keys(Old, New) ->
    O = flat(Old),
    N = flat(New),
    lists:usort([K || K <- maps:keys(maps:merge(O, N)), maps:find(K, O) =/= maps:find(K, N)]).

flat(Terms) ->
    maps:from_list(lists:append([case T of
                                     {App, KVs} -> [{{App, K}, V} || {K, V} <- KVs];
                                     File -> [{{file, File}, present}]
                                 end || T <- Terms])).

names(Keys) ->
    Shown = [case K of
                 {file, F} -> io_lib:format("included file ~ts", [F]);
                 {App, Key} -> io_lib:format("~0tp.~0tp", [App, Key])
             end || K <- lists:sublist(Keys, ?MAX_KEYS)],
    iolist_to_binary([lists:join(", ", Shown),
                      [io_lib:format(" and ~b more", [length(Keys) - ?MAX_KEYS]) || length(Keys) > ?MAX_KEYS]]).


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

parse_test() ->
    ?assertEqual({ok, [{a, [{k, 1}]}, "other.config"]}, parse(<<"[{a, [{k, 1}]}, \"other.config\"].">>)),
    ?assertMatch({error, <<"line 1", _/binary>>}, parse(<<"[{a, [{k, 1}] oops.">>)),
    ?assertMatch({error, _}, parse(<<"[{a, b}].">>)),
    ?assertMatch({error, _}, parse(<<"#{}.">>)).

changed_keys_test() ->
    ?assertEqual([{a, k}, {a, new}, {b, gone}],
                 changed_keys([{a, [{k, 1}, {same, x}]}, {b, [{gone, 1}]}],
                              [{a, [{k, 2}, {same, x}, {new, 3}]}])),
    ?assertEqual([], changed_keys([{a, [{k, 1}]}], [{a, [{k, 1}]}])).
-endif.
