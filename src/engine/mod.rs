//! The Docker engine: the only module that speaks bollard. Everything it
//! returns is voisin's own types ([`ObservedContainer`], [`ImageInfo`]…), so
//! the plan and the deploy can be read and tested without an engine.
//!
//! Every call goes through [`Engine::call`], which counts it as a read or a
//! write and, with `-v`, reports it: a deploy that changes nothing can then
//! prove that it made no mutating call.

pub mod build;
pub mod create;
mod observe;
pub mod swarm;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, NetworkConnectRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};

pub use observe::{ImageInfo, ObservedContainer, ObservedNetwork, ObservedVolume, RunState};

use crate::progress::Reporter;

/// The oldest engine API voisin speaks: Docker 20.10.
pub const MIN_API: (u32, u32) = (1, 41);

/// The label every object voisin creates carries: the association's domain.
pub const ASSOCIATION_LABEL: &str = "voisin.association";

/// A piece of what a command printed.
#[derive(Debug, Clone)]
pub enum ExecChunk {
    /// On its standard output.
    Stdout(bytes::Bytes),
    /// On its standard error.
    Stderr(bytes::Bytes),
}

/// A command running in a container, its input and output attached.
pub struct ExecStream {
    /// The exec's id, to ask its exit code.
    pub id: String,
    /// Its standard input (shut it down to close it).
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// What it prints.
    pub output: std::pin::Pin<Box<dyn Stream<Item = Result<ExecChunk, EngineError>> + Send>>,
}

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local socket.
    Unix(PathBuf),
    /// A remote engine over TLS, with client certificates.
    Tls {
        /// `tcp://host:port`.
        address: String,
        /// The certificate authority that signed the engine's certificate.
        ca: PathBuf,
        /// voisin's client certificate.
        cert: PathBuf,
        /// voisin's client key.
        key: PathBuf,
    },
}

impl Target {
    /// The engine a manifest names (paths relative to `base`), else the one
    /// `DOCKER_HOST` names (with `DOCKER_CERT_PATH` for TLS), else the local
    /// socket.
    pub fn resolve(
        engine: Option<&crate::manifest::Engine>,
        base: &Path,
    ) -> Result<Self, EngineError> {
        if let Some(engine) = engine {
            return Self::from_host(
                &engine.host,
                engine
                    .tls
                    .as_ref()
                    .map(|t| (base.join(&t.ca), base.join(&t.cert), base.join(&t.key))),
                "the manifest's `engine.host`",
            );
        }
        if let Ok(host) = std::env::var("DOCKER_HOST")
            && !host.is_empty()
        {
            let certs = std::env::var_os("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .map(|dir| {
                    (
                        dir.join("ca.pem"),
                        dir.join("cert.pem"),
                        dir.join("key.pem"),
                    )
                });
            return Self::from_host(&host, certs, "`DOCKER_HOST`");
        }
        Ok(Self::Unix(PathBuf::from("/var/run/docker.sock")))
    }

    /// A swarm node's own engine, as the manifest names it (certificate
    /// paths relative to `base`).
    pub fn of_node(
        node: &crate::manifest::SwarmNode,
        base: &Path,
        name: &str,
    ) -> Result<Self, EngineError> {
        Self::from_host(
            &node.host,
            node.tls
                .as_ref()
                .map(|t| (base.join(&t.ca), base.join(&t.cert), base.join(&t.key))),
            &format!("the engine of the node `{name}`"),
        )
    }

    fn from_host(
        host: &str,
        certs: Option<(PathBuf, PathBuf, PathBuf)>,
        origin: &str,
    ) -> Result<Self, EngineError> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if host.starts_with("tcp://") {
            let Some((ca, cert, key)) = certs else {
                return Err(EngineError::Setup {
                    message: format!("{origin} is `{host}`, a remote engine without TLS"),
                    hint: "anyone who reaches that port owns the machine: give the engine's TLS certificates (`engine.tls` in the manifest, or `DOCKER_CERT_PATH`)".into(),
                });
            };
            return Ok(Self::Tls {
                address: host.to_string(),
                ca,
                cert,
                key,
            });
        }
        Err(EngineError::Setup {
            message: format!("{origin} is `{host}`, which voisin cannot reach"),
            hint: "use `unix:///var/run/docker.sock` or `tcp://HOST:2376` with TLS".into(),
        })
    }

    /// How the engine is named in messages.
    pub fn display(&self) -> String {
        match self {
            Self::Unix(path) => format!("unix://{}", path.display()),
            Self::Tls { address, .. } => address.clone(),
        }
    }
}

/// What went wrong with the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached or used at all: exits 2.
    #[error("{message}")]
    Setup {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A call failed.
    #[error("{call}: {message}")]
    Api {
        /// What voisin asked for.
        call: String,
        /// The HTTP status, when the engine answered.
        status: Option<u16>,
        /// What the engine said.
        message: String,
    },
    /// A command run in a container failed.
    #[error("{0}")]
    Failed(String),
}

impl EngineError {
    /// What to do about it, when voisin knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Setup { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// The HTTP status of a failed call.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => *status,
            _ => None,
        }
    }

    /// True when the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the engine said a name is taken.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// What the engine said, for a failed call.
    pub fn engine_message(&self) -> &str {
        match self {
            Self::Api { message, .. } | Self::Setup { message, .. } | Self::Failed(message) => {
                message
            }
        }
    }
}

/// Whether a call changes the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only looks.
    Read,
    /// Creates, changes, starts, stops or removes something.
    Write,
}

/// How many calls a run made.
#[derive(Debug, Default)]
pub struct Calls {
    reads: AtomicU64,
    writes: AtomicU64,
}

/// What a command run in a container printed, and how it ended.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Its exit code.
    pub code: i64,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// A line of a container's log.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// From standard error.
    pub stderr: bool,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    target: String,
    calls: Arc<Calls>,
    reporter: Arc<dyn Reporter>,
    /// The engine's API version, like (1, 41).
    pub api: (u32, u32),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Long calls (a stop with a grace period, a build, an upload) must not be
/// cut by bollard's default two-minute timeout.
const TIMEOUT: Duration = Duration::from_mins(10);

impl Engine {
    /// Connects, and checks that the engine answers and is recent enough.
    pub async fn connect(
        target: &Target,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, EngineError> {
        let shown = target.display();
        let docker = match target {
            Target::Unix(path) => {
                if !path.exists() {
                    return Err(no_engine(&shown));
                }
                Docker::connect_with_unix(
                    &path.display().to_string(),
                    TIMEOUT.as_secs(),
                    bollard::API_DEFAULT_VERSION,
                )
            }
            Target::Tls {
                address,
                ca,
                cert,
                key,
            } => {
                // rustls needs one process-wide crypto provider; a second
                // install (another engine in the same process) is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                for (what, path) in [("CA certificate", ca), ("client certificate", cert), ("client key", key)] {
                    if !path.exists() {
                        return Err(EngineError::Setup {
                            message: format!("the engine's {what} `{}` does not exist", path.display()),
                            hint: "check the paths under `engine.tls` in the manifest (relative to the manifest)".into(),
                        });
                    }
                }
                Docker::connect_with_ssl(
                    address,
                    key,
                    cert,
                    ca,
                    TIMEOUT.as_secs(),
                    bollard::API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|e| EngineError::Setup {
            message: format!("cannot connect to the Docker engine at `{shown}`: {e}"),
            hint: "check the engine's address and certificates".into(),
        })?;
        let mut engine = Self {
            docker,
            target: shown.clone(),
            calls: Arc::new(Calls::default()),
            reporter,
            api: (0, 0),
        };
        let version = engine
            .call(Kind::Read, "GET /version", engine.docker.version())
            .await
            .map_err(|e| connection_error(&shown, target, &e))?;
        let api = check_api(
            &shown,
            version.version.as_deref(),
            version.api_version.as_deref(),
        )?;
        engine.api = api;
        Ok(engine)
    }

    /// The engine's address, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many calls so far: (reads, writes).
    pub fn calls(&self) -> (u64, u64) {
        (
            self.calls.reads.load(Ordering::Relaxed),
            self.calls.writes.load(Ordering::Relaxed),
        )
    }

    /// Runs one engine call: counts it, reports it, and turns bollard's
    /// error into ours.
    async fn call<T>(
        &self,
        kind: Kind,
        what: &str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        match kind {
            Kind::Read => self.calls.reads.fetch_add(1, Ordering::Relaxed),
            Kind::Write => self.calls.writes.fetch_add(1, Ordering::Relaxed),
        };
        self.reporter.engine_call(what);
        fut.await.map_err(|e| api_error(what, e))
    }

    fn count(&self, kind: Kind, what: &str) {
        match kind {
            Kind::Read => self.calls.reads.fetch_add(1, Ordering::Relaxed),
            Kind::Write => self.calls.writes.fetch_add(1, Ordering::Relaxed),
        };
        self.reporter.engine_call(what);
    }

    // --- looking ----------------------------------------------------------

    /// Where the engine keeps images and volumes (`DockerRootDir`), a path
    /// on the engine's machine.
    pub async fn data_root(&self) -> Result<Option<String>, EngineError> {
        let info = self
            .call(Kind::Read, "GET /info", self.docker.info())
            .await?;
        Ok(info.docker_root_dir)
    }

    /// Every container of the association, inspected.
    pub async fn containers(
        &self,
        association: &str,
    ) -> Result<Vec<ObservedContainer>, EngineError> {
        let filters =
            HashMap::from([("label", vec![format!("{ASSOCIATION_LABEL}={association}")])]);
        let list = self
            .call(
                Kind::Read,
                "GET /containers/json",
                self.docker.list_containers(Some(
                    ListContainersOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                )),
            )
            .await?;
        let inspections =
            futures_util::future::join_all(list.iter().filter_map(|c| c.id.clone()).map(
                |id| async move {
                    self.call(
                        Kind::Read,
                        &format!("GET /containers/{}/json", short(&id)),
                        self.docker.inspect_container(&id, None),
                    )
                    .await
                },
            ))
            .await;
        let mut out = Vec::new();
        for inspected in inspections {
            match inspected {
                Ok(i) => out.push(observe::container(i)),
                // Removed between the list and the inspection.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One container by name or id, when it exists.
    pub async fn container(&self, name: &str) -> Result<Option<ObservedContainer>, EngineError> {
        match self
            .call(
                Kind::Read,
                &format!("GET /containers/{name}/json"),
                self.docker.inspect_container(name, None),
            )
            .await
        {
            Ok(i) => Ok(Some(observe::container(i))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every network of the association.
    pub async fn networks(&self, association: &str) -> Result<Vec<ObservedNetwork>, EngineError> {
        let filters =
            HashMap::from([("label", vec![format!("{ASSOCIATION_LABEL}={association}")])]);
        let list = self
            .call(
                Kind::Read,
                "GET /networks",
                self.docker.list_networks(Some(
                    ListNetworksOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
            )
            .await?;
        let mut out: Vec<ObservedNetwork> = list.into_iter().map(observe::network).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every volume of the association.
    pub async fn volumes(&self, association: &str) -> Result<Vec<ObservedVolume>, EngineError> {
        let filters =
            HashMap::from([("label", vec![format!("{ASSOCIATION_LABEL}={association}")])]);
        let list = self
            .call(
                Kind::Read,
                "GET /volumes",
                self.docker.list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
            )
            .await?;
        let mut out: Vec<ObservedVolume> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(observe::volume)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// An image by name, when the engine has it.
    pub async fn image(&self, name: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self
            .call(
                Kind::Read,
                &format!("GET /images/{name}/json"),
                self.docker.inspect_image(name),
            )
            .await
        {
            Ok(i) => Ok(Some(observe::image(i))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every `NAME:TAG` the engine has for an image name.
    pub async fn images_named(&self, name: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("reference".to_string(), vec![name.to_string()])]);
        let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self
            .call(
                Kind::Read,
                &format!("GET /images/json?reference={name}"),
                self.docker.list_images(Some(options)),
            )
            .await?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t.starts_with(&format!("{name}:")))
            .collect())
    }

    /// A file or folder of a container, as a tar archive (a read: nothing changes).
    pub async fn download(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        self.count(
            Kind::Read,
            &format!("GET /containers/{container}/archive?path={path}"),
        );
        let stream = self.docker.download_from_container(
            container,
            Some(
                DownloadFromContainerOptionsBuilder::default()
                    .path(path)
                    .build(),
            ),
        );
        let mut bytes = Vec::new();
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(e) => {
                    let e = api_error(&format!("reading `{path}` in `{container}`"), e);
                    return if e.is_not_found() { Ok(None) } else { Err(e) };
                }
            }
        }
        Ok(Some(bytes))
    }

    /// A container's log, as a stream of lines.
    pub fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
        since: Option<i64>,
    ) -> impl Stream<Item = Result<LogLine, EngineError>> + use<> {
        self.log_stream(container, follow, tail, since, false)
    }

    /// The log of a swarm service: every copy's, on whichever node it
    /// runs, gathered by the manager.
    pub fn service_logs(
        &self,
        service: &str,
        follow: bool,
        tail: Option<u64>,
        since: Option<i64>,
    ) -> impl Stream<Item = Result<LogLine, EngineError>> + use<> {
        self.log_stream(service, follow, tail, since, true)
    }

    fn log_stream(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
        since: Option<i64>,
        service: bool,
    ) -> impl Stream<Item = Result<LogLine, EngineError>> + use<> {
        let kind = if service { "services" } else { "containers" };
        self.count(Kind::Read, &format!("GET /{kind}/{container}/logs"));
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail.map_or_else(|| "all".to_string(), |t| t.to_string()))
            .since(since.and_then(|s| i32::try_from(s).ok()).unwrap_or(0))
            .build();
        let name = container.to_string();
        let lines = if service {
            self.docker.service_logs(container, Some(options)).boxed()
        } else {
            self.docker.logs(container, Some(options)).boxed()
        };
        lines
            .map_ok(|out| match out {
                bollard::container::LogOutput::StdErr { message } => LogLine {
                    stderr: true,
                    bytes: message.to_vec(),
                },
                other => LogLine {
                    stderr: false,
                    bytes: other.into_bytes().to_vec(),
                },
            })
            .map_err(move |e| api_error(&format!("reading the log of `{name}`"), e))
    }

    // --- changing ---------------------------------------------------------

    /// Creates a network.
    pub async fn create_network(
        &self,
        name: &str,
        subnet: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let body = create::network(name, subnet, labels);
        self.call(
            Kind::Write,
            &format!("POST /networks/create {name}"),
            self.docker.create_network(body),
        )
        .await?;
        Ok(())
    }

    /// Removes a network; one already gone is fine.
    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self
            .call(
                Kind::Write,
                &format!("DELETE /networks/{name}"),
                self.docker.remove_network(name),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Creates a volume (the engine answers with the existing one when the
    /// name is taken).
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let body = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.call(
            Kind::Write,
            &format!("POST /volumes/create {name}"),
            self.docker.create_volume(body),
        )
        .await?;
        Ok(())
    }

    /// Removes a volume; one already gone is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .call(
                Kind::Write,
                &format!("DELETE /volumes/{name}"),
                self.docker
                    .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Creates a container (not started) from a body [`create`] built; joins
    /// its other networks, which an engine before API 1.44 takes one at a time.
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
        more_networks: &[(String, Vec<String>)],
    ) -> Result<String, EngineError> {
        let created = self
            .call(
                Kind::Write,
                &format!("POST /containers/create {name}"),
                self.docker.create_container(
                    Some(CreateContainerOptionsBuilder::default().name(name).build()),
                    body,
                ),
            )
            .await?;
        for (network, aliases) in more_networks {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                }),
            };
            self.call(
                Kind::Write,
                &format!("POST /networks/{network}/connect {name}"),
                self.docker.connect_network(network, request),
            )
            .await?;
        }
        Ok(created.id)
    }

    /// Extracts a tar archive at `/` in a container (running or not);
    /// entries keep the owners and modes their headers give.
    pub async fn upload(&self, container: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        self.call(
            Kind::Write,
            &format!("PUT /containers/{container}/archive"),
            self.docker.upload_to_container(
                container,
                Some(UploadToContainerOptionsBuilder::default().path("/").build()),
                bollard::body_full(tar.into()),
            ),
        )
        .await
    }

    /// Extracts a tar stream into a folder of a container (running or
    /// not), as [`Engine::upload`] does, without holding it in memory. The
    /// engine answers once the whole stream is in, however long that takes.
    pub async fn upload_stream(
        &self,
        container: &str,
        path: &str,
        tar: impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_hours(7 * 24));
        self.call(
            Kind::Write,
            &format!("PUT /containers/{container}/archive?path={path}"),
            docker.upload_to_container(
                container,
                Some(
                    UploadToContainerOptionsBuilder::default()
                        .path(path)
                        .build(),
                ),
                bollard::body_try_stream(tar),
            ),
        )
        .await
    }

    /// Starts a container.
    pub async fn start(&self, container: &str) -> Result<(), EngineError> {
        self.call(
            Kind::Write,
            &format!("POST /containers/{container}/start"),
            self.docker.start_container(container, None),
        )
        .await
    }

    /// Stops a container, giving it `grace` seconds; one already stopped is fine.
    pub async fn stop(&self, container: &str, grace: u64) -> Result<(), EngineError> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(grace).unwrap_or(i32::MAX))
            .build();
        match self
            .call(
                Kind::Write,
                &format!("POST /containers/{container}/stop"),
                self.docker.stop_container(container, Some(options)),
            )
            .await
        {
            // 304: already stopped.
            Err(e) if e.status() == Some(304) => Ok(()),
            other => other,
        }
    }

    /// Removes a container, stopping it first if it runs; one already gone is fine.
    pub async fn remove(&self, container: &str) -> Result<(), EngineError> {
        match self
            .call(
                Kind::Write,
                &format!("DELETE /containers/{container}"),
                self.docker.remove_container(
                    container,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                ),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Renames a container.
    pub async fn rename(&self, container: &str, to: &str) -> Result<(), EngineError> {
        self.call(
            Kind::Write,
            &format!("POST /containers/{container}/rename?name={to}"),
            self.docker.rename_container(
                container,
                RenameContainerOptionsBuilder::default().name(to).build(),
            ),
        )
        .await
    }

    /// Runs a command in a running container and collects its output and
    /// exit code (which the engine gives only once the output has ended).
    pub async fn exec(
        &self,
        container: &str,
        command: &[String],
        user: Option<&str>,
        env: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, EngineError> {
        let what = format!("POST /containers/{container}/exec");
        let created = self
            .call(
                Kind::Write,
                &what,
                self.docker.create_exec(
                    container,
                    ExecConfig {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        attach_stdin: Some(stdin.is_some()),
                        cmd: Some(command.to_vec()),
                        user: user.map(str::to_string),
                        env: (!env.is_empty()).then(|| env.to_vec()),
                        ..Default::default()
                    },
                ),
            )
            .await?;
        let started = self
            .call(
                Kind::Write,
                &format!("POST /exec/{}/start", short(&created.id)),
                self.docker.start_exec(&created.id, None),
            )
            .await?;
        let mut out = ExecOutput::default();
        if let bollard::exec::StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            if let Some(bytes) = stdin {
                use tokio::io::AsyncWriteExt as _;
                // A command that exits without reading its input closes the
                // pipe: what it did is told by its exit code, not this write.
                let _ = input.write_all(&bytes).await;
                let _ = input.shutdown().await;
            }
            drop(input);
            while let Some(item) = output.next().await {
                match item.map_err(|e| api_error(&what, e))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        out.stderr.extend_from_slice(&message);
                    }
                    other => out.stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let inspected = self
            .call(
                Kind::Read,
                &format!("GET /exec/{}/json", short(&created.id)),
                self.docker.inspect_exec(&created.id),
            )
            .await?;
        out.code = inspected.exit_code.unwrap_or(-1);
        Ok(out)
    }

    /// Starts a command in a running container with its input and output
    /// attached, for data too large to hold in memory (a database dump, a
    /// volume's contents). Its exit code is [`Engine::exec_code`] once the
    /// output has ended.
    pub async fn exec_stream(
        &self,
        container: &str,
        command: &[String],
        user: Option<&str>,
        with_input: bool,
    ) -> Result<ExecStream, EngineError> {
        let what = format!("POST /containers/{container}/exec");
        let created = self
            .call(
                Kind::Write,
                &what,
                self.docker.create_exec(
                    container,
                    ExecConfig {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        attach_stdin: Some(with_input),
                        cmd: Some(command.to_vec()),
                        user: user.map(str::to_string),
                        ..Default::default()
                    },
                ),
            )
            .await?;
        let started = self
            .call(
                Kind::Write,
                &format!("POST /exec/{}/start", short(&created.id)),
                self.docker.start_exec(&created.id, None),
            )
            .await?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Api {
                call: what,
                status: None,
                message: "the engine did not attach the command's output".into(),
            });
        };
        let output = output.map(move |item| match item {
            Ok(bollard::container::LogOutput::StdErr { message }) => Ok(ExecChunk::Stderr(message)),
            Ok(other) => Ok(ExecChunk::Stdout(other.into_bytes())),
            Err(e) => Err(api_error(&what, e)),
        });
        Ok(ExecStream {
            id: created.id,
            input,
            output: Box::pin(output),
        })
    }

    /// The exit code of a command started by [`Engine::exec_stream`], once
    /// its output has ended; `None` while it still runs.
    pub async fn exec_code(&self, id: &str) -> Result<Option<i64>, EngineError> {
        let inspected = self
            .call(
                Kind::Read,
                &format!("GET /exec/{}/json", short(id)),
                self.docker.inspect_exec(id),
            )
            .await?;
        if inspected.running == Some(true) {
            return Ok(None);
        }
        Ok(Some(inspected.exit_code.unwrap_or(-1)))
    }

    /// Pulls an image, reporting each layer's progress. With no registry
    /// reachable, says how to load the image by hand.
    pub async fn pull(&self, image: &str) -> Result<(), EngineError> {
        let (name, tag) = split_image(image);
        self.count(
            Kind::Write,
            &format!("POST /images/create?fromImage={image}"),
        );
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut stream = std::pin::pin!(self.docker.create_image(Some(options), None, None));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| cannot_pull(image, &e.to_string()))?;
            if let Some(detail) = info.error_detail {
                return Err(cannot_pull(
                    image,
                    detail.message.as_deref().unwrap_or("unknown error"),
                ));
            }
            if let (Some(layer), Some(progress)) = (&info.id, &info.progress_detail) {
                // The containerd store gives no total: then it is not bytes.
                let current = progress
                    .current
                    .and_then(|c| u64::try_from(c).ok())
                    .unwrap_or(0);
                let total = progress.total.and_then(|t| u64::try_from(t).ok());
                self.reporter
                    .bytes(&format!("{image} {layer}"), current, total);
            }
        }
        Ok(())
    }

    /// Removes an image no container uses any more; one in use or gone is left be.
    pub async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        match self
            .call(
                Kind::Write,
                &format!("DELETE /images/{}", short(id)),
                self.docker.remove_image(
                    id,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                ),
            )
            .await
        {
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            // Removed meanwhile by another run: Docker 20.10 says so with a
            // 500 rather than a 404 when the id was resolved first.
            Err(e) if e.engine_message().contains("unrecognized image ID") => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Builds an image from a tar build context (a `Dockerfile` at its
    /// root), tagged `tag`.
    pub async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<(), EngineError> {
        self.count(Kind::Write, &format!("POST /build?t={tag}"));
        let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream = std::pin::pin!(self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(context.into()))
        ));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| api_error(&format!("building `{tag}`"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::Api {
                    call: format!("building `{tag}`"),
                    status: None,
                    message: detail.message.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }
}

/// The engine's API version, refused when older than [`MIN_API`].
fn check_api(
    shown: &str,
    version: Option<&str>,
    api: Option<&str>,
) -> Result<(u32, u32), EngineError> {
    let parsed = api.and_then(parse_api).unwrap_or((0, 0));
    if parsed < MIN_API {
        return Err(EngineError::Setup {
            message: format!(
                "the Docker engine at `{shown}` is too old: version {} (API {}.{})",
                version.unwrap_or("unknown"),
                parsed.0,
                parsed.1
            ),
            hint: format!(
                "voisin needs Docker 20.10 (API {}.{}) or newer: upgrade it (`sudo apt-get install docker.io`)",
                MIN_API.0, MIN_API.1
            ),
        });
    }
    Ok(parsed)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn parse_api(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `name:tag` split where a registry port would confuse a plain split.
pub fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

fn no_engine(shown: &str) -> EngineError {
    EngineError::Setup {
        message: format!("no Docker engine answers at `{shown}`"),
        hint: "start it (`sudo systemctl start docker`), or install it (`sudo apt-get install docker.io`); for another engine, set `engine.host` in the manifest or `DOCKER_HOST`".into(),
    }
}

fn connection_error(shown: &str, target: &Target, e: &EngineError) -> EngineError {
    let text = e.to_string();
    if text.contains("ermission denied") {
        let socket = match target {
            Target::Unix(p) => p.display().to_string(),
            Target::Tls { address, .. } => address.clone(),
        };
        return EngineError::Setup {
            message: format!("permission denied on the Docker socket `{socket}`"),
            hint: "join the `docker` group (`sudo usermod -aG docker $USER`, then log in again), or run voisin as root".into(),
        };
    }
    if matches!(target, Target::Tls { .. })
        && (text.contains("certificate") || text.contains("tls") || text.contains("TLS"))
    {
        return EngineError::Setup {
            message: format!("the Docker engine at `{shown}` refused voisin's TLS connection: {text}"),
            hint: "check `engine.tls` in the manifest: the CA must have signed the engine's certificate, and the engine must accept voisin's client certificate".into(),
        };
    }
    let mut err = no_engine(shown);
    if let EngineError::Setup { message, .. } = &mut err {
        let _ = write!(message, " ({})", e.engine_message());
    }
    err
}

fn cannot_pull(image: &str, why: &str) -> EngineError {
    EngineError::Setup {
        message: format!("cannot pull the image `{image}`: {}", why.trim()),
        hint: format!(
            "no registry answered; on a machine that has the image, `docker save {image} -o image.tar`, copy the file here and `docker load -i image.tar`, then deploy again"
        ),
    }
}

fn api_error(call: &str, e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            call: call.to_string(),
            status: Some(status_code),
            message: message.trim().to_string(),
        },
        other => EngineError::Api {
            call: call.to_string(),
            status: None,
            message: error_chain(&other),
        },
    }
}

/// An error and its causes on one line: hyper's errors say little at the top.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_engine_without_tls_is_refused() {
        let err =
            Target::from_host("tcp://192.0.2.1:2375", None, "`DOCKER_HOST`").expect_err("refused");
        assert!(err.to_string().contains("without TLS"));
        assert!(err.hint().is_some_and(|h| h.contains("TLS certificates")));
    }

    #[test]
    fn an_engine_older_than_docker_20_10_is_refused_with_what_to_install() {
        let err = check_api(
            "unix:///var/run/docker.sock",
            Some("19.03.15"),
            Some("1.40"),
        )
        .expect_err("too old");
        assert_eq!(
            err.to_string(),
            "the Docker engine at `unix:///var/run/docker.sock` is too old: version 19.03.15 (API 1.40)"
        );
        assert!(err.hint().is_some_and(|h| h.contains("Docker 20.10")));
        assert_eq!(
            check_api("x", Some("20.10.24"), Some("1.41")).expect("recent enough"),
            (1, 41)
        );
        assert_eq!(
            check_api("x", Some("29.0"), Some("1.52")).expect("recent enough"),
            (1, 52)
        );
    }

    #[test]
    fn image_names_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_image("traefik:v3.7.1"), ("traefik", "v3.7.1"));
        assert_eq!(
            split_image("registry.local:5000/board"),
            ("registry.local:5000/board", "latest")
        );
        assert_eq!(
            split_image("registry.local:5000/board:1"),
            ("registry.local:5000/board", "1")
        );
    }
}
