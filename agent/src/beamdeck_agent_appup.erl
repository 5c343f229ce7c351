%%% @doc Appups: the high-level instructions of every application whose
%%% version differs between two releases, with the defaults that systools
%%% applies made explicit (`{load_module, M}' is brutal_purge/brutal_purge
%%% and so on), as the wire JSON.
-module(beamdeck_agent_appup).

-export([appups/1]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([parse_appup/4]).
-endif.

-type err() :: {error, atom(), binary()}.

%%% APPUPS %%%

%% @doc Applications whose version differs between the two releases, with the
%% appup that describes the change: for an upgrade, the new version's appup
%% (up section, keyed by the old version); for a downgrade, the higher
%% (running) version's appup (down section, keyed by the lower version).
-spec appups(Path) -> [map()] when Path :: beamdeck_agent_release:path().
appups(#{direction := Dir, from_libs := FromLibs, to_libs := ToLibs, source := Source}) ->
    FromV = maps:from_list([{A, {V, D}} || {A, V, D} <- FromLibs]),
    ToV = maps:from_list([{A, {V, D}} || {A, V, D} <- ToLibs]),
    Changed = [{A, maps:get(A, FromV, undefined), maps:get(A, ToV, undefined)}
               || A <- lists:usort(maps:keys(FromV) ++ maps:keys(ToV)),
                  element(1, maps:get(A, FromV, {x, x})) =/= element(1, maps:get(A, ToV, {y, y}))],
    [appup(Dir, Source, A, F, T) || {A, F, T} <- Changed].

appup(_Dir, _Source, App, undefined, {Vsn, _}) ->
    #{app => App, from => null, to => bin(Vsn), change => added, file => null,
      instructions => [], error => null};
appup(_Dir, _Source, App, {Vsn, _}, undefined) ->
    #{app => App, from => bin(Vsn), to => null, change => removed, file => null,
      instructions => [], error => null};
appup(Dir, Source, App, {FromVsn, FromDir}, {ToVsn, ToDir}) ->
    {LibDir, Section, Key} = case Dir of
                                 up -> {ToDir, up, FromVsn};
                                 down -> {FromDir, down, ToVsn}
                             end,
    Rel = filename:join([LibDir, "ebin", atom_to_list(App) ++ ".appup"]),
    Base = #{app => App, from => bin(FromVsn), to => bin(ToVsn), change => changed},
    case beamdeck_agent_release_files:read(Source, Rel) of
        {ok, Bin, Label} ->
            case parse_appup(Label, Bin, Section, Key) of
                {ok, Instrs} ->
                    Base#{file => bin(Label), instructions => Instrs, error => null};
                {error, Code, Msg} ->
                    Base#{file => bin(Label), instructions => [],
                          error => #{code => Code, message => Msg}}
            end;
        {error, Code, Msg, Label} ->
            Base#{file => bin(Label), instructions => [], error => #{code => Code, message => Msg}}
    end.

%% @doc Parse an appup file's bytes and pick the instructions of one
%% section for one version (a string, or a regular expression as a binary).
%% The result is JSON: one object per high-level instruction.
-spec parse_appup(Label, Bytes, Section, Vsn) -> {ok, [map()]} | err()
    when Label :: string(), Bytes :: binary(), Section :: up | down, Vsn :: string().
parse_appup(Label, Bytes, Section, Vsn) ->
    case beamdeck_agent_release_files:consult_bin(Bytes) of
        {ok, [{_AppVsn, Ups, Downs}]} when is_list(Ups), is_list(Downs) ->
            Entries = case Section of up -> Ups; down -> Downs end,
            case [Is || {Key, Is} <- Entries, vsn_match(Key, Vsn)] of
                [Is | _] when is_list(Is) -> {ok, [appup_json(I) || I <- Is]};
                [_ | _] -> {error, bad_appup, beamdeck_agent_terms:fmt("~ts: the instructions for ~ts are not a list", [Label, Vsn])};
                [] -> {error, bad_appup, beamdeck_agent_terms:fmt("~ts: no ~ts entry for ~ts", [Label, section_word(Section), Vsn])}
            end;
        {ok, Terms} ->
            {error, bad_appup, beamdeck_agent_terms:fmt("~ts: expected {Vsn, Ups, Downs}, found ~ts", [Label, cap(Terms)])};
        {error, Why} ->
            {error, bad_appup, beamdeck_agent_terms:fmt("~ts: ~ts", [Label, Why])}
    end.

vsn_match(Key, Vsn) when is_list(Key) -> Key =:= Vsn;
vsn_match(Key, Vsn) when is_binary(Key) ->
    try re:run(Vsn, <<"^(?:", Key/binary, ")$">>, [unicode, {capture, none}]) =:= match
    catch _:_ -> false
    end;
vsn_match(_, _) -> false.

%% @doc One high-level appup instruction as JSON, defaults made explicit
%% (see appup(4)): `kind', `module', `prePurge'/`postPurge' (`brutal' or
%% `soft'), `deps', `defaulted' (which fields came from defaults), `text'.
-spec appup_json(Instruction) -> map() when Instruction :: term().
appup_json(I) ->
    Text = text(I),
    maps:put(text, Text, appup_instr(I)).

appup_instr({update, M}) -> update(M, static, default, soft, brutal_purge, brutal_purge, [],
                                   [change, prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, supervisor}) ->
    update(M, static, default, supervisor, brutal_purge, brutal_purge, [],
           [prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, Deps}) when is_list(Deps) ->
    update(M, static, default, soft, brutal_purge, brutal_purge, Deps,
           [change, prePurge, postPurge, timeout, modType]);
appup_instr({update, M, Change}) ->
    update(M, static, default, Change, brutal_purge, brutal_purge, [],
           [prePurge, postPurge, deps, timeout, modType]);
appup_instr({update, M, Change, Deps}) ->
    update(M, static, default, Change, brutal_purge, brutal_purge, Deps,
           [prePurge, postPurge, timeout, modType]);
appup_instr({update, M, Change, Pre, Post, Deps}) ->
    update(M, static, default, Change, Pre, Post, Deps, [timeout, modType]);
appup_instr({update, M, Timeout, Change, Pre, Post, Deps}) ->
    update(M, static, Timeout, Change, Pre, Post, Deps, [modType]);
appup_instr({update, M, ModType, Timeout, Change, Pre, Post, Deps}) ->
    update(M, ModType, Timeout, Change, Pre, Post, Deps, []);
appup_instr({load_module, M}) ->
    load(M, brutal_purge, brutal_purge, [], [prePurge, postPurge, deps]);
appup_instr({load_module, M, Deps}) ->
    load(M, brutal_purge, brutal_purge, Deps, [prePurge, postPurge]);
appup_instr({load_module, M, Pre, Post, Deps}) ->
    load(M, Pre, Post, Deps, []);
appup_instr({add_module, M}) -> #{kind => add_module, module => M, deps => [], defaulted => [deps]};
appup_instr({add_module, M, Deps}) -> #{kind => add_module, module => M, deps => mods(Deps), defaulted => []};
appup_instr({delete_module, M}) -> #{kind => delete_module, module => M, deps => [], defaulted => [deps]};
appup_instr({delete_module, M, Deps}) -> #{kind => delete_module, module => M, deps => mods(Deps), defaulted => []};
appup_instr({add_application, A}) -> #{kind => add_application, application => A, type => permanent,
                                       defaulted => [type]};
appup_instr({add_application, A, T}) -> #{kind => add_application, application => A, type => T,
                                          defaulted => []};
appup_instr({remove_application, A}) -> #{kind => remove_application, application => A};
appup_instr({restart_application, A}) -> #{kind => restart_application, application => A};
appup_instr({apply, {M, F, Args}}) when is_list(Args) ->
    #{kind => apply, mfa => beamdeck_agent_terms:mfa({M, F, Args})};
appup_instr(restart_new_emulator) -> #{kind => restart_new_emulator};
appup_instr(restart_emulator) -> #{kind => restart_emulator};
appup_instr(Other) -> maps:remove(text, beamdeck_agent_relup_read:instruction_json(Other)).

update(M, ModType, Timeout, Change, Pre, Post, Deps, Defaulted) ->
    {ChangeKind, Extra} = case Change of
                              {advanced, E} -> {advanced, printed(E)};
                              soft -> {soft, null};
                              supervisor -> {supervisor, null};
                              Other -> {text(Other), null}
                          end,
    #{kind => update, module => M, modType => ModType, timeout => timeout_json(Timeout),
      change => ChangeKind, extra => Extra, codeChange => ChangeKind =:= advanced,
      prePurge => purge_json(Pre), postPurge => purge_json(Post), deps => mods(Deps),
      defaulted => Defaulted}.

load(M, Pre, Post, Deps, Defaulted) ->
    #{kind => load_module, module => M, prePurge => purge_json(Pre),
      postPurge => purge_json(Post), deps => mods(Deps), defaulted => Defaulted}.

%%% HELPERS %%%

purge_json(P) -> beamdeck_agent_relup_read:purge_json(P).

timeout_json(T) -> beamdeck_agent_relup_read:timeout_json(T).

mods(L) -> beamdeck_agent_relup_read:mods(L).

section_word(up) -> "upgrade";
section_word(down) -> "downgrade".

bin(S) when is_list(S) -> unicode:characters_to_binary(S);
bin(B) when is_binary(B) -> B.

text(T) -> beamdeck_agent_terms:text(T, 2000).

printed(T) -> beamdeck_agent_terms:printed(T, 2000).

cap(T) -> beamdeck_agent_terms:text(T, 300).

