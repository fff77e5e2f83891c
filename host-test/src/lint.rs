//! `lint`: the pipeline linter. Reads `.gitlab-ci.yml` and the local files it includes, hands
//! them to the component with what the file does not say about the project, and prints the
//! component's report.
//!
//! The host's part is reading files: which ones, the component says (`local-includes`); the
//! host reads each at most once, only `.yml`/`.yaml` files inside the repository (a path never
//! leaves it, and neither does a symbolic link), and stops one file past the component's limit
//! so the component refuses the pipeline by its own rule. Every file is read and judged before
//! anything is printed.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use clap::{ArgMatches, Args};
use gitlab_azure_oidc_host::{CiFile, Failure, Host, LintContext, Session};

use crate::exit::Exit;
use crate::fetch::read_file;
use crate::flags::Source;
use crate::pipeline_yaml::{top_level_key_lines, yaml_to_json, MAX_YAML_BYTES};
use crate::report::{FailOn, Rendered, ReportArgs};

/// Most directory entries looked at when a glob include needs the repository's file list.
const MAX_LISTED_ENTRIES: usize = 100_000;

#[derive(Args, Debug)]
pub(crate) struct LintArgs {
    /// The CI file to lint.
    #[arg(value_name = "FILE", default_value = ".gitlab-ci.yml")]
    pub(crate) file: PathBuf,
    /// The repository root, where `include:local` paths start. Defaults to FILE's directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) repo: Option<PathBuf>,
    /// The policy document (JSON): also check every job against its rules.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<String>,
    /// The app's federated credentials, as `az ad app federated-credential list` prints them:
    /// check the subject and audience of every job against them.
    #[arg(long, value_name = "FILE")]
    pub(crate) credentials: Option<String>,
    /// The project's path, `group/project`: the start of every job's `sub`.
    #[arg(long, value_name = "PATH", env = "CI_PROJECT_PATH")]
    pub(crate) project: Option<String>,
    /// The project's numeric id, for policy rules that pin `project_id`.
    #[arg(long, value_name = "ID", env = "CI_PROJECT_ID")]
    pub(crate) project_id: Option<String>,
    /// The top-level namespace's numeric id, for policy rules that pin `namespace_id`.
    #[arg(long, value_name = "ID")]
    pub(crate) namespace_id: Option<String>,
    /// The default branch.
    #[arg(long, value_name = "BRANCH", env = "CI_DEFAULT_BRANCH", default_value = "main")]
    pub(crate) default_branch: String,
    /// A protected branch besides the default one: a name or a `*` wildcard (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) protected_branch: Vec<String>,
    /// A protected tag: a name or a `*` wildcard (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) protected_tag: Vec<String>,
    /// A protected environment: a name or a `*` wildcard (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) protected_environment: Vec<String>,
    /// The GitLab URL tokens name as `iss`.
    #[arg(long, value_name = "URL", env = "CI_SERVER_URL", default_value = "https://gitlab.com")]
    pub(crate) issuer: String,
    /// The project's `sub` claim components, comma-separated, e.g. `project_path,ref_type,ref`
    /// (the default).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(crate) sub_components: Vec<String>,
    /// An audience accepted besides Entra's own and those the credentials name, e.g. a broker's
    /// (repeatable).
    #[arg(long, value_name = "AUD")]
    pub(crate) audience: Vec<String>,
    /// The app registration's client id, for the `az` commands in fixes.
    #[arg(long, value_name = "GUID")]
    pub(crate) app_id: Option<String>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

pub(crate) fn command(host: &Host, args: &LintArgs, matches: &ArgMatches) -> Result<(), Exit> {
    let project = args.project.clone().filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        Exit::usage(
            "lint needs the project's path: pass --project group/project (or set \
             CI_PROJECT_PATH); every job's subject starts with it",
        )
    })?;
    let mut session = host.session()?;
    let repo = Repository::open(&args.file, args.repo.as_deref())?;
    let (root, included, notes) = collect(&mut session, &repo)?;
    let policy = args.policy.as_deref().map(|p| read_file(p, "--policy")).transpose()?;
    let credentials =
        args.credentials.as_deref().map(|p| read_file(p, "--credentials")).transpose()?;
    let context = LintContext {
        project_path: project,
        project_id: args.project_id.clone(),
        namespace_id: args.namespace_id.clone(),
        default_branch: Some(args.default_branch.clone()),
        default_branch_protected: None,
        protected_branches: args.protected_branch.clone(),
        protected_tags: args.protected_tag.clone(),
        protected_environments: args.protected_environment.clone(),
        issuer: Some(args.issuer.clone()),
        sub_claim_components: args.sub_components.clone(),
        extra_audiences: args.audience.clone(),
        app_id: args.app_id.clone(),
    };
    let report = session
        .lint_pipeline(
            &root,
            &included,
            &context,
            policy.as_deref(),
            credentials.as_deref(),
            args.report.fail_on.severity(),
        )?
        .map_err(|f| refused_input(f, args, matches))?;
    for note in &notes {
        eprintln!("warning: {note}");
    }
    let rendered =
        Rendered { text: &report.text, json: &report.json, code_quality: &report.code_quality };
    args.report.print(&rendered)?;
    if report.fails {
        let c = &report.counts;
        let at_or_above = [
            (FailOn::Critical, c.critical),
            (FailOn::High, c.high),
            (FailOn::Medium, c.medium),
            (FailOn::Low, c.low),
            (FailOn::Info, c.info),
        ]
        .into_iter()
        .filter(|(s, _)| *s >= args.report.fail_on)
        .map(|(_, n)| u64::from(n))
        .sum::<u64>();
        return Err(Exit::refused(
            "lint-failed",
            format!(
                "{at_or_above} finding(s) at {} or above (--fail-on); fix them, or lint with a \
                 higher --fail-on",
                args.report.fail_on.name()
            ),
        ));
    }
    Ok(())
}

/// The component refused an input: name the file, or the flag or variable, it came from.
fn refused_input(mut failure: Failure, args: &LintArgs, matches: &ArgMatches) -> Exit {
    let kind = failure.kind.as_str();
    let file = if kind.starts_with("policy-") {
        args.policy.as_deref().map(|p| format!("--policy {p}"))
    } else if kind.starts_with("credentials-") {
        args.credentials.as_deref().map(|p| format!("--credentials {p}"))
    } else {
        None
    };
    if kind == "context" {
        // "lint context: `issuer` is ...": say which flag or variable set the field.
        let source = [
            ("issuer", "issuer", Some("CI_SERVER_URL")),
            ("project_path", "project", Some("CI_PROJECT_PATH")),
            ("default_branch", "default_branch", Some("CI_DEFAULT_BRANCH")),
            ("sub_claim_components", "sub_components", None),
        ]
        .into_iter()
        .find(|(field, _, _)| failure.message.contains(&format!("`{field}`")))
        .map(|(_, id, env)| Source::of(matches, id, &id.replace('_', "-"), env).describe());
        if let Some(source) = source {
            failure.message = format!("{} (from {source})", failure.message);
        }
    }
    Exit::failure(failure, file.as_deref())
}

/// The repository the CI file belongs to: include paths start at its root.
struct Repository {
    /// The root, canonical.
    root: PathBuf,
    /// The CI file, canonical.
    file: PathBuf,
    /// The CI file's path from the root, with `/` separators.
    file_path: String,
}

impl Repository {
    fn open(file: &Path, repo: Option<&Path>) -> Result<Self, Exit> {
        let canonical = fs::canonicalize(file)
            .map_err(|e| Exit::usage(format!("cannot read {}: {e}", file.display())))?;
        let root = match repo {
            Some(dir) => fs::canonicalize(dir)
                .map_err(|e| Exit::usage(format!("cannot open --repo {}: {e}", dir.display())))?,
            None => canonical.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let relative = canonical.strip_prefix(&root).map_err(|_| {
            Exit::usage(format!(
                "{} is not inside the repository {}; pass the repository root with --repo",
                file.display(),
                root.display()
            ))
        })?;
        let file_path = slash_path(relative)
            .ok_or_else(|| Exit::usage(format!("{}: the path is not UTF-8", file.display())))?;
        Ok(Self { root, file: canonical, file_path })
    }

    /// The file at `path` (from the root, as the component names it), when it may be read:
    /// `Ok(None)` with a note when it may not, `Ok(None)` without one when it does not exist
    /// (the component reports the include as missing).
    fn resolve(&self, path: &str, notes: &mut Vec<String>) -> Result<Option<PathBuf>, Exit> {
        let relative = Path::new(path);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            notes.push(format!("include `{path}` not read: it leaves the repository"));
            return Ok(None);
        }
        if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
            notes.push(format!(
                "include `{path}` not read: GitLab includes only `.yml` and `.yaml` files"
            ));
            return Ok(None);
        }
        let canonical = match fs::canonicalize(self.root.join(relative)) {
            Ok(canonical) => canonical,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Exit::usage(format!("cannot read include `{path}`: {e}"))),
        };
        if !canonical.starts_with(&self.root) {
            notes.push(format!(
                "include `{path}` not read: it is a link to a file outside the repository"
            ));
            return Ok(None);
        }
        if !canonical.is_file() {
            notes.push(format!("include `{path}` not read: it is not a file"));
            return Ok(None);
        }
        Ok(Some(canonical))
    }

    /// The repository's `.yml`/`.yaml` files, from the root, sorted: what globs expand over.
    /// `.git` is skipped and symbolic links to directories are not followed.
    fn ci_files(&self, notes: &mut Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_LISTED_ENTRIES {
                    notes.push(format!(
                        "listed only the first {MAX_LISTED_ENTRIES} entries of the repository \
                         for glob includes"
                    ));
                    out.sort();
                    return out;
                }
                let path = entry.path();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() {
                    if entry.file_name() != ".git" {
                        stack.push(path);
                    }
                    continue;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".yml") || name.ends_with(".yaml") {
                    if let Some(relative) = path.strip_prefix(&self.root).ok().and_then(slash_path)
                    {
                        out.push(relative);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// A relative path with `/` separators; `None` when it is not UTF-8.
fn slash_path(path: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = path.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/"))
}

/// Reads and parses one CI file; `path` names it in messages.
fn read_ci_file(file: &Path, path: &str) -> Result<CiFile, Exit> {
    let handle =
        fs::File::open(file).map_err(|e| Exit::usage(format!("cannot read {path}: {e}")))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_YAML_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    handle
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| Exit::usage(format!("cannot read {path}: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| Exit::usage(format!("{path}: not UTF-8 text")))?;
    let value = yaml_to_json(&text).map_err(|e| Exit::usage(format!("{path}: {e}")))?;
    Ok(CiFile {
        path: path.to_owned(),
        json: value.to_string(),
        key_lines: top_level_key_lines(&text).into_iter().collect(),
    })
}

/// The root file and every local file it includes, transitively, each once; and the notes on
/// includes that were not read.
fn collect(
    session: &mut Session,
    repo: &Repository,
) -> Result<(CiFile, Vec<CiFile>, Vec<String>), Exit> {
    let limit = usize::try_from(session.lint_max_files()?).unwrap_or(usize::MAX);
    let root = read_ci_file(&repo.file, &repo.file_path)?;
    let mut notes = Vec::new();
    let mut included: Vec<CiFile> = Vec::new();
    let mut seen = BTreeSet::from([repo.file_path.clone()]);
    let mut listing: Option<Vec<String>> = None;
    let mut queue = VecDeque::from([root.json.clone()]);
    'files: while let Some(json) = queue.pop_front() {
        let ask = |session: &mut Session, listing: &[String]| {
            session.local_includes(&json, listing)?.map_err(|f| Exit::failure(f, None))
        };
        let mut includes = ask(session, listing.as_deref().unwrap_or_default())?;
        if !includes.globs.is_empty() && listing.is_none() {
            let files = repo.ci_files(&mut notes);
            includes = ask(session, &files)?;
            listing = Some(files);
        }
        for path in includes.paths {
            if !seen.insert(path.clone()) {
                continue;
            }
            let Some(file) = repo.resolve(&path, &mut notes)? else { continue };
            let document = read_ci_file(&file, &path)?;
            queue.push_back(document.json.clone());
            included.push(document);
            // One past the limit: the component refuses the pipeline by its own rule.
            if included.len() + 1 > limit {
                break 'files;
            }
        }
    }
    Ok((root, included, notes))
}
