//! The built-in OpenSSH rule set (`sshd`), OpenSSH 7.x to 10.x plus the older shapes that
//! fail2ban's sample logs still carry.
//!
//! Written from the OpenSSH log formats (what fail2ban's filter matches in its normal and
//! aggressive modes was used as a checklist, not as a source). The rules cover one line at a
//! time: messages that name no address (`Disconnecting: Too many authentication failures for
//! root`, `kex_exchange_identification: ...`) cannot name a source and are left unmatched; the
//! same attempts show up in the `Connection closed ... [preauth]` line that follows them.
//!
//! Closes and disconnects count only in the pre-authentication phase (` [preauth]`), or before
//! the client identified itself (no user named, see `sshd.closed-before-identification`): the
//! same words naming a `user X` are the normal end of a logged-in session. `Accepted ...` lines are
//! reported as `sshd.accepted` so a detector can clear suspicion; the daemon does not count
//! them as failures.
//!
//! Injection: every rule is anchored at both ends; where client text (user name, version
//! string, PAM fields) comes before the address, the slot is [`Slot::Greedy`], so the address
//! is the one pinned by the server-written tail (see [`super::template`]). Where client text
//! comes after the address (disconnect reasons, key-exchange offers), the address sits at a
//! fixed position right after server-written words ([`Slot::Addr`]).

use super::template::{Rule, Slot, Step};
use Step::*;

/// `for [invalid user ]USER from ADDR[ port N][ sshN][: info]`, shared by failures and
/// successes.
const AUTH_PRE: &[Step] = &[Lit(" for "), OptLit("invalid user ")];
const AUTH_TAIL: &[Step] = &[OptPort, OptProto, Info];
const FROM_USER: Slot = Slot::Greedy {
    sep: " from ",
    user: true,
};
/// `[invalid user |authenticating user ]USER ADDR` in closes/disconnects.
const SP_USER: Slot = Slot::Greedy {
    sep: " ",
    user: true,
};
const PREAUTH_TAIL: &[Step] = &[OptPort, Lit(" [preauth]"), OptSpaces];

/// Reasons OpenSSH gives in `User X from ADDR not allowed because ...` that mean an access
/// policy refused the user (the shell reasons are configuration problems, not attacks).
const NOT_ALLOWED: &[&str] = &[
    "not listed in AllowUsers",
    "listed in DenyUsers",
    "not in any group",
    "a group is listed in DenyGroups",
    "none of user's groups are listed in AllowGroups",
];

/// The `sshd` rule set. Rules sharing a lead are tried in this order.
pub(crate) static RULES: &[Rule] = &[
    // --- authentication failures -------------------------------------------------------
    Rule {
        id: "sshd.failed-password",
        lead: "Failed password",
        pre: AUTH_PRE,
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        id: "sshd.failed-publickey",
        lead: "Failed publickey",
        pre: AUTH_PRE,
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        id: "sshd.failed-keyboard-interactive",
        lead: "Failed keyboard-interactive",
        // `keyboard-interactive/pam`
        pre: &[OptToken, Lit(" for "), OptLit("invalid user ")],
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        id: "sshd.failed-hostbased",
        lead: "Failed hostbased",
        pre: AUTH_PRE,
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        // none, gssapi-with-mic, unknown, ...
        id: "sshd.failed-other",
        lead: "Failed ",
        pre: &[Token, Lit(" for "), OptLit("invalid user ")],
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        id: "sshd.invalid-user",
        lead: "Invalid user ",
        pre: &[],
        slot: FROM_USER,
        tail: &[Suffix],
    },
    Rule {
        id: "sshd.invalid-user",
        lead: "Illegal user ",
        pre: &[],
        slot: FROM_USER,
        tail: &[Suffix],
    },
    Rule {
        id: "sshd.user-not-allowed",
        lead: "User ",
        pre: &[],
        slot: FROM_USER,
        tail: &[Lit(" not allowed because "), OneOf(NOT_ALLOWED), Suffix],
    },
    Rule {
        id: "sshd.root-login-refused",
        lead: "ROOT LOGIN REFUSED FROM ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[Suffix],
    },
    Rule {
        // pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=ADDR  user=root
        id: "sshd.pam-auth-failure",
        lead: "pam_",
        pre: &[
            TokenEndingWith("(sshd:auth):"),
            Lit(" authentication failure;"),
        ],
        slot: Slot::Greedy {
            sep: " rhost=",
            user: false,
        },
        tail: &[PamUser],
    },
    Rule {
        // `error: PAM: Authentication failure for USER from ADDR` (also error/failed, any case)
        id: "sshd.auth-failure",
        lead: "Authentication failure for ",
        pre: &[],
        slot: FROM_USER,
        tail: &[OptLit(" via "), OptToken, Suffix],
    },
    Rule {
        id: "sshd.auth-failure",
        lead: "authentication failure for ",
        pre: &[],
        slot: FROM_USER,
        tail: &[OptLit(" via "), OptToken, Suffix],
    },
    Rule {
        id: "sshd.auth-failure",
        lead: "Authentication error for ",
        pre: &[],
        slot: FROM_USER,
        tail: &[OptLit(" via "), OptToken, Suffix],
    },
    Rule {
        id: "sshd.auth-failure",
        lead: "authentication error for ",
        pre: &[],
        slot: FROM_USER,
        tail: &[OptLit(" via "), OptToken, Suffix],
    },
    Rule {
        id: "sshd.auth-failure",
        lead: "User not known to the underlying authentication module for ",
        pre: &[OptLit("illegal user "), OptLit("invalid user ")],
        slot: FROM_USER,
        tail: &[Suffix],
    },
    Rule {
        id: "sshd.max-auth-attempts",
        lead: "maximum authentication attempts exceeded for ",
        pre: &[OptLit("invalid user ")],
        slot: FROM_USER,
        tail: &[OptPort, OptProto, Suffix],
    },
    Rule {
        // OpenSSH 7.x+: `Disconnecting authenticating user root ADDR port N: Too many
        // authentication failures [preauth]`
        id: "sshd.too-many-auth-failures",
        lead: "Disconnecting ",
        pre: &[OneOf(&["authenticating user ", "invalid user ", "user "])],
        slot: SP_USER,
        tail: &[OptPort, Lit(": Too many authentication failures"), Suffix],
    },
    Rule {
        id: "sshd.change-of-username",
        lead: "Disconnecting ",
        pre: &[OneOf(&["authenticating user ", "invalid user ", "user "])],
        slot: SP_USER,
        tail: &[
            OptPort,
            Lit(": Change of username or service not allowed: "),
            RestEndsWith(&["[preauth]"]),
        ],
    },
    // --- pre-authentication closes (fail2ban's aggressive/ddos modes) ----------------------
    Rule {
        id: "sshd.preauth-closed",
        lead: "Connection closed by ",
        pre: &[OneOf(&["authenticating user ", "invalid user "])],
        slot: SP_USER,
        tail: PREAUTH_TAIL,
    },
    Rule {
        id: "sshd.preauth-closed",
        lead: "Connection closed by ",
        pre: &[],
        slot: Slot::Addr,
        tail: PREAUTH_TAIL,
    },
    // OpenSSH 8.x+: a client that closes before sending its identification string logs
    // `kex_exchange_identification: ...` (no address) then this line, with neither a user nor
    // ` [preauth]` (the pre-auth child does not exist yet). A session that ends after login
    // always names the user (`user X ADDR port N`), so it cannot match here. On OpenSSH
    // older than 7.6 an abrupt close after login may look the same; fail2ban's aggressive
    // mode counts this line only after the kex line (multi-line), ravelin counts it alone.
    Rule {
        id: "sshd.closed-before-identification",
        lead: "Connection closed by ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[Port, OptSpaces],
    },
    Rule {
        id: "sshd.preauth-reset",
        lead: "Connection reset by ",
        pre: &[OneOf(&["authenticating user ", "invalid user "])],
        slot: SP_USER,
        tail: PREAUTH_TAIL,
    },
    Rule {
        id: "sshd.preauth-reset",
        lead: "Connection reset by ",
        pre: &[],
        slot: Slot::Addr,
        tail: PREAUTH_TAIL,
    },
    Rule {
        id: "sshd.closed-before-identification",
        lead: "Connection reset by ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[Port, OptSpaces],
    },
    Rule {
        id: "sshd.preauth-disconnected",
        lead: "Disconnected from ",
        pre: &[OneOf(&["authenticating user ", "invalid user "])],
        slot: SP_USER,
        tail: PREAUTH_TAIL,
    },
    Rule {
        id: "sshd.preauth-disconnected",
        lead: "Disconnected from ",
        pre: &[],
        slot: Slot::Addr,
        tail: PREAUTH_TAIL,
    },
    // `Received disconnect from ADDR port N:11: REASON [preauth]`: REASON is client text, so
    // the address is pinned by its fixed position after the lead.
    Rule {
        id: "sshd.preauth-received-disconnect",
        lead: "Received disconnect from ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[
            OptPort,
            Lit(":"),
            OptSpaces,
            Lit("11:"),
            RestEndsWith(&[" [preauth]"]),
        ],
    },
    Rule {
        id: "sshd.auth-fail-disconnect",
        lead: "Received disconnect from ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[
            OptPort,
            Lit(":"),
            OptSpaces,
            Lit("3:"),
            RestEndsWith(&[": Auth fail", ": Auth fail [preauth]"]),
        ],
    },
    Rule {
        id: "sshd.no-auth-methods",
        lead: "Received disconnect from ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[
            OptPort,
            Lit(":"),
            OptSpaces,
            Lit("14:"),
            OptSpaces,
            OneOf(&[
                "No supported authentication methods available",
                "No authentication methods available",
            ]),
            Suffix,
        ],
    },
    // --- protocol-level probes (fail2ban's ddos/extra modes) -------------------------------
    Rule {
        id: "sshd.no-identification",
        lead: "Did not receive identification string from ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[Suffix],
    },
    Rule {
        // the quoted version string is client text: the address is the last one before the
        // server-written `port N` tail
        id: "sshd.bad-protocol-version",
        lead: "Bad protocol version identification '",
        pre: &[],
        slot: Slot::Greedy {
            sep: "' from ",
            user: false,
        },
        tail: &[Suffix],
    },
    Rule {
        id: "sshd.bad-protocol-version",
        lead: "Protocol major versions differ for ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[OptPort, Lit(": "), Rest],
    },
    Rule {
        id: "sshd.banner-invalid-format",
        lead: "banner exchange: Connection from ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[OptPort, Lit(": invalid format"), Suffix],
    },
    Rule {
        id: "sshd.unable-to-negotiate",
        lead: "Unable to negotiate with ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[OptPort, Lit(": no matching "), Rest],
    },
    Rule {
        id: "sshd.login-grace-timeout",
        lead: "Timeout before authentication for ",
        pre: &[],
        slot: Slot::Addr,
        tail: &[Suffix],
    },
    Rule {
        // tcp wrappers: `refused connect from NAME (ADDR)`; NAME may be client-chosen DNS
        id: "sshd.tcpwrappers-refused",
        lead: "refused connect from ",
        pre: &[],
        slot: Slot::Greedy {
            sep: " (",
            user: false,
        },
        tail: &[Lit(")"), OptSpaces],
    },
    // --- success ------------------------------------------------------------------------
    // Key logins get their own id: a recent one can make an address trusted.
    Rule {
        id: "sshd.accepted-publickey",
        lead: "Accepted publickey",
        pre: &[Lit(" for ")],
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
    Rule {
        id: "sshd.accepted",
        lead: "Accepted ",
        pre: &[Token, Lit(" for ")],
        slot: FROM_USER,
        tail: AUTH_TAIL,
    },
];

/// Rules that are recognised and reported but do not count toward a jail's threshold, because
/// the same attempt is already counted by another line (one password typo writes both a PAM
/// line and `Failed password`; `Received disconnect` is followed by `Disconnected from`), or
/// because legitimate clients produce them routinely (`Failed publickey` for every key an
/// agent offers that is not authorised; an idle password prompt timing out). Counting them
/// would ban a user for a couple of typos, the one failure we must never have.
pub(crate) const NOT_COUNTED: &[&str] = &[
    "sshd.accepted",
    "sshd.accepted-publickey",
    "sshd.failed-publickey",
    "sshd.pam-auth-failure",
    "sshd.auth-failure",
    "sshd.preauth-received-disconnect",
    "sshd.login-grace-timeout",
];

/// Default weights of the counted rules (sshguard-style attack scores): how much one line
/// adds to a score-based detector. An invalid user or a refused root login says more about
/// intent than a pre-auth disconnect, which scanners and impatient humans both produce.
/// Rules not listed weigh 1; [`NOT_COUNTED`] rules weigh 0. A failure on the user `root`
/// weighs double. Jails can override any of these (`[jail.weights]`).
pub(crate) const WEIGHTS: &[(&str, f32)] = &[
    ("sshd.invalid-user", 2.0),
    ("sshd.user-not-allowed", 2.0),
    ("sshd.root-login-refused", 2.0),
    ("sshd.preauth-closed", 0.5),
    ("sshd.preauth-reset", 0.5),
    ("sshd.preauth-disconnected", 0.5),
    ("sshd.closed-before-identification", 0.5),
    ("sshd.no-identification", 0.5),
    ("sshd.no-auth-methods", 0.5),
    ("sshd.auth-fail-disconnect", 0.5),
    ("sshd.unable-to-negotiate", 0.5),
];
