FROM python:3.11-slim
WORKDIR /srv/crmhub
COPY pyproject.toml README.md constraints.txt ./
COPY app app
COPY core core
COPY workers workers
COPY connectors connectors
COPY examples examples
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system crmhub \
    && mkdir -p var && chown crmhub var
USER crmhub
EXPOSE 8000
CMD ["crmhub", "serve", "--host", "0.0.0.0"]
