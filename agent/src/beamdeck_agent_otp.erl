%%% @doc Bounded calls into OTP internals that can block forever.
%%%
%%% `supervisor:which_children/1` waits forever (a relup can suspend a
%%% supervisor), and the application-master calls are undocumented. Each runs
%%% in a helper process that is killed when its time is up, so no collector of
%%% the agent can hang on the host's processes.
-module(beamdeck_agent_otp).

-export([call/2, which_children/2, app_supervisor/2]).
%% Which path runs: asked of a running release too (the OTP matrix's mix
%% release test checks a node on OTP 27 takes application:get_supervisor/1).
-export([app_supervisor_mode/0]).

%% application:get_supervisor/1 is OTP 26+, behind a runtime check.
-dialyzer({nowarn_function, app_supervisor/1}).

%% @doc Run `Fun` in a helper process; `{ok, Result}`, `{error, timeout}` or
%% `{error, {Class, Reason}}` if it raised.
-spec call(Fun, TimeoutMs) -> {ok, term()} | {error, timeout | {atom(), term()}}
    when Fun :: fun(() -> term()), TimeoutMs :: non_neg_integer().
call(Fun, TimeoutMs) ->
    Parent = self(),
    Tag = make_ref(),
    %% Linked: if the caller is killed (a request worker past its time), the
    %% helper goes too instead of outliving it inside a stuck call.
    {Pid, Ref} = spawn_opt(fun() ->
        Parent ! {Tag, try {ok, Fun()} catch C:R -> {error, {C, R}} end}
    end, [link, monitor]),
    Result = receive
                 {Tag, R} ->
                     unlink(Pid),
                     receive {'DOWN', Ref, process, Pid, _} -> ok end,
                     R;
                 {'DOWN', Ref, process, Pid, Reason} ->
                     unlink(Pid),
                     {error, {exit, Reason}}
             after TimeoutMs ->
                 unlink(Pid),
                 exit(Pid, kill),
                 receive {'DOWN', Ref, process, Pid, _} -> ok end,
                 timeout
             end,
    %% No stray messages left for the caller: a late result, or the 'EXIT'
    %% of the link when the caller traps exits.
    receive {Tag, _} -> ok after 0 -> ok end,
    receive {'EXIT', Pid, _} -> ok after 0 -> ok end,
    case Result of
        timeout -> {error, timeout};
        _ -> Result
    end.

%% @doc `supervisor:which_children/1` with a timeout.
-spec which_children(Sup, TimeoutMs) -> {ok, [term()]} | {error, term()}
    when Sup :: pid() | atom(), TimeoutMs :: non_neg_integer().
which_children(Sup, TimeoutMs) ->
    call(fun() -> supervisor:which_children(Sup) end, TimeoutMs).

%% @doc The top supervisor of a running application, with a timeout.
%% OTP 26+ exports `application:get_supervisor/1`; on OTP 25 the
%% application master is asked (undocumented, hence the wrapper).
-spec app_supervisor(App, TimeoutMs) -> {ok, pid()} | {error, term()}
    when App :: atom(), TimeoutMs :: non_neg_integer().
app_supervisor(App, TimeoutMs) ->
    Result = call(fun() -> app_supervisor(App) end, TimeoutMs),
    case Result of
        {ok, {ok, Pid}} when is_pid(Pid) -> {ok, Pid};
        {ok, Other} -> {error, Other};
        Error -> Error
    end.

%% @doc How app_supervisor/2 finds the supervisor on this node:
%% `get_supervisor' (OTP 26+) or `application_master' (OTP 25).
-spec app_supervisor_mode() -> get_supervisor | application_master.
app_supervisor_mode() ->
    case erlang:function_exported(application, get_supervisor, 1) of
        true -> get_supervisor;
        false -> application_master
    end.

app_supervisor(App) ->
    case app_supervisor_mode() of
        get_supervisor -> application:get_supervisor(App);
        application_master ->
            case application_controller:get_master(App) of
                Master when is_pid(Master) ->
                    case application_master:get_child(Master) of
                        {Pid, _Mod} when is_pid(Pid) -> {ok, Pid};
                        _ -> undefined
                    end;
                _ -> undefined
            end
    end.
