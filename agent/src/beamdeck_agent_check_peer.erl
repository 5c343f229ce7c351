%%% @doc The temporary peer node of the code_change rehearsal
%%% (beamdeck_agent_check_rehearsal; decisions.md, "Agent and protocol").
%%%
%%% OTP's `peer' with `connection => standard_io': no epmd, no cookie, no
%%% distribution, so the peer cannot reach the live node's processes. It
%%% boots the target release's own boot script with every application start
%%% but kernel's and stdlib's removed (the target's code path and modules,
%%% none of its processes) and the target's sys.config. Every process there
%%% has a heap cap (`+hmax', killed beyond it); the boot has a deadline; the
%%% peer is linked to the caller and always stopped.
-module(beamdeck_agent_check_peer).

-export([with_peer/3, start/2, stop/1, boot_without_apps/1, temp_dir/0]).

-define(PEER_BOOT_MS, 8000).
-define(PEER_HMAX_WORDS, 33554432).   % 256 MB per process on a 64-bit node

%% @doc Run `Fun(Peer)' with a peer of the target release of `Path';
%% `{error, Why}' when no peer can be made (the target is not unpacked, its
%% boot script is missing, the peer does not start before `Deadline').
-spec with_peer(Path, Deadline, Fun) -> {ok, Result} | {error, binary()}
    when Path :: beamdeck_agent_release:path(), Deadline :: integer(),
         Fun :: fun((pid()) -> Result), Result :: term().
with_peer(#{source := {package, _}, to := To}, _Deadline, _Fun) ->
    {error, beamdeck_agent_terms:fmt("release ~ts is not unpacked: the code_change rehearsal needs its files on disk", [To])};
with_peer(#{to := To}, Deadline, Fun) ->
    RelDir = beamdeck_agent_release:rel_dir(),
    Boot = filename:join([RelDir, To, "start.boot"]),
    Config = filename:join([RelDir, To, "sys.config"]),
    Tmp = filename:join(temp_dir(), "beamdeck-rehearse-" ++ integer_to_list(erlang:unique_integer([positive]))),
    try
        ok = filelib:ensure_dir(filename:join(Tmp, "x")),
        case file:read_file(Boot) of
            {ok, BootBin} ->
                TmpBoot = filename:join(Tmp, "rehearse"),
                ok = file:write_file(TmpBoot ++ ".boot", boot_without_apps(BootBin)),
                ConfigArgs = case filelib:is_regular(Config) of
                                 true -> ["-config", Config];
                                 false -> []
                             end,
                case start(["-boot", TmpBoot | ConfigArgs], Deadline) of
                    {ok, Peer} ->
                        try {ok, Fun(Peer)}
                        after stop(Peer)
                        end;
                    {error, Why} ->
                        {error, beamdeck_agent_terms:fmt("the peer node for the code_change rehearsal did not start: ~ts", [Why])}
                end;
            {error, R} ->
                {error, beamdeck_agent_terms:fmt("~ts: ~ts; the code_change rehearsal needs the target's boot script",
                            [Boot, file:format_error(R)])}
        end
    after
        _ = file:del_dir_r(Tmp)
    end.

%% @doc Where the peer's boot script is written: `$TMPDIR', else /tmp.
-spec temp_dir() -> file:filename().
temp_dir() ->
    case os:getenv("TMPDIR") of
        Dir when is_list(Dir), Dir =/= "" -> Dir;
        _ -> "/tmp"
    end.

%% @doc A boot script (binary) with every `application:start_boot/2' but
%% kernel's and stdlib's removed: the target's code, none of its processes.
-spec boot_without_apps(Bin) -> binary() when Bin :: binary().
boot_without_apps(Bin) ->
    {script, Id, Cmds} = binary_to_term(Bin),
    Keep = fun({apply, {application, start_boot, [App | _]}}) -> lists:member(App, [kernel, stdlib]);
              (_) -> true
           end,
    term_to_binary({script, Id, lists:filter(Keep, Cmds)}).

%% @doc Start a peer with the extra emulator `Args', booted before
%% `Deadline' (monotonic ms), with this node's erts (`erlexec', whose
%% environment the running node set), linked to the caller.
-spec start(Args, Deadline) -> {ok, pid()} | {error, binary()} when Args :: [string()], Deadline :: integer().
start(Args, Deadline) ->
    Exec = filename:join([code:root_dir(), "erts-" ++ erlang:system_info(version), "bin", "erlexec"]),
    Opts0 = #{connection => standard_io,
              args => ["+hmax", integer_to_list(?PEER_HMAX_WORDS), "+hmaxk", "true",
                       "-kernel", "logger_level", "none" | Args],
              wait_boot => max(1000, min(?PEER_BOOT_MS, Deadline - erlang:monotonic_time(millisecond)))},
    Opts = case filelib:is_regular(Exec) of
               true -> Opts0#{exec => Exec};
               false -> Opts0
           end,
    try peer:start_link(Opts) of
        {ok, Peer} -> {ok, Peer};
        {ok, Peer, _Node} -> {ok, Peer};
        {error, R} -> {error, beamdeck_agent_terms:fmt("~0tP", [R, 10])}
    catch Class:R -> {error, beamdeck_agent_terms:fmt("~ts:~0tP", [Class, R, 10])}
    end.

%% @doc Stop a peer (killed if it does not stop).
-spec stop(Peer) -> ok when Peer :: pid().
stop(Peer) ->
    try peer:stop(Peer) catch _:_ -> exit(Peer, kill), ok end.


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

boot_without_apps_test() ->
    Script = {script, {"r", "1"}, [{path, ["x"]}, {apply, {application, start_boot, [kernel, permanent]}},
                                   {apply, {application, start_boot, [my_app, permanent]}},
                                   {apply, {application, load, [{application, my_app, []}]}}]},
    {script, _, Cmds} = binary_to_term(boot_without_apps(term_to_binary(Script))),
    ?assertEqual([{path, ["x"]}, {apply, {application, start_boot, [kernel, permanent]}},
                  {apply, {application, load, [{application, my_app, []}]}}], Cmds).

package_target_cannot_peer_test() ->
    ?assertMatch({error, <<"release 2 is not unpacked", _/binary>>},
                 with_peer(#{source => {package, "x.tar.gz"}, to => "2"}, 0, fun(_) -> ok end)).
-endif.
