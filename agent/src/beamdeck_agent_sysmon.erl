%%% @doc Hot mailboxes as events: on OTP 27+ `erlang:system_monitor/2' with
%%% `{long_message_queue, {Disable, Enable}}' tells this process when a
%%% mailbox grows past `Enable' messages, and the sampler sends that process
%%% at once instead of at its next scan (at 1M processes scans are seconds
%%% apart).
%%%
%%% A node has one system-monitor receiver and host applications use it, so
%%% this process takes it only when `erlang:system_monitor()' is `undefined'
%%% and never replaces the host's; it gives it back on exit only if it still
%%% holds it. `mode/0' says which: `owned', `host' (someone else holds it;
%%% the agent relies on its scans), `unsupported' (before OTP 27) or `off'
%%% (setting `mailbox_monitor' false). The mode goes out in `hello'
%%% capabilities (`mailbox_monitor' when owned).
-module(beamdeck_agent_sysmon).

-behaviour(gen_server).

-export([start_link/0, mode/0, take/2, release/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([mode/0]).

-define(SERVER, ?MODULE).
-define(CALL_TIMEOUT, 2000).
%% Above ENABLE messages a mailbox is reported; below DISABLE it is re-armed.
-define(ENABLE, 500).
-define(DISABLE, 100).
%% Reports passed on to the sampler per second at most: a storm of hot
%% mailboxes costs a bounded number of reads.
-define(MAX_PER_SECOND, 50).

%% `long_message_queue' is unknown to an OTP 25 PLT.
-dialyzer({no_fail_call, [take/2]}).

-type mode() :: owned | host | unsupported | off.

-record(st, {mode :: mode(), window = 0 :: integer(), count = 0 :: non_neg_integer()}).

%%% API %%%

%% @doc Start the monitor process, registered as `beamdeck_agent_sysmon'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc The mode the agent runs in (`off' when the process is not running).
-spec mode() -> mode().
mode() ->
    try gen_server:call(?SERVER, mode, ?CALL_TIMEOUT)
    catch exit:_ -> off
    end.

%% @doc Make `Receiver' the system monitor for long message queues if no one
%% holds the system monitor; the mode that results. Never replaces a
%% monitor that is set.
-spec take(Receiver, Enable :: boolean()) -> mode() when Receiver :: pid().
take(_Receiver, false) -> off;
take(Receiver, true) ->
    case erlang:system_monitor() of
        undefined ->
            try erlang:system_monitor(Receiver, [{long_message_queue, {?DISABLE, ?ENABLE}}]) of
                undefined -> owned;
                Other ->
                    %% Someone set one between our read and our write: give
                    %% theirs back at once.
                    _ = erlang:system_monitor(Other),
                    host
            catch
                error:badarg -> unsupported
            end;
        {_Pid, _Opts} -> host
    end.

%% @doc Give the system monitor back (to nobody) if this node's agent holds it.
-spec release() -> ok.
release() ->
    case {whereis(?SERVER), erlang:system_monitor()} of
        {Self, {Self, _}} when is_pid(Self) -> _ = erlang:system_monitor(undefined), ok;
        _ -> ok
    end.

%%% GEN_SERVER %%%

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    process_flag(trap_exit, true),
    Mode = take(self(), beamdeck_agent_config:get(mailbox_monitor)),
    {ok, #st{mode = Mode}}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(mode, _From, S) -> {reply, S#st.mode, S};
handle_call(_Request, _From, S) -> {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({monitor, Pid, long_message_queue, true}, S) when is_pid(Pid) ->
    Now = erlang:monotonic_time(second),
    S1 = case S#st.window of
             Now -> S;
             _ -> S#st{window = Now, count = 0}
         end,
    case S1#st.count < ?MAX_PER_SECOND of
        true ->
            beamdeck_agent_sampler:hot(Pid),
            {noreply, S1#st{count = S1#st.count + 1}};
        false ->
            {noreply, S1}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, _S) ->
    release().
